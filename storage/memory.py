"""Conversation memory kept in the database: the engine's `ConversationMemory` protocol."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, insert, select

from storage.engines import DatabaseEngines
from storage.models import ConversationMessage, utc_now

#: Messages kept per conversation; older ones are deleted as new ones arrive.
MAX_KEPT = 1000


class ConversationStore:
    """`db.memory`: the messages of agents' conversations, by key (such as a chat id)."""

    def __init__(self, engines: DatabaseEngines, *, max_kept: int = MAX_KEPT) -> None:
        self._engines = engines
        self._max_kept = max_kept

    async def load_messages(self, key: str, window: int) -> list[dict[str, Any]]:
        """The last `window` messages stored under `key`, oldest first."""
        if window <= 0:
            return []
        async with self._engines.reading() as session:
            messages = await session.scalars(
                select(ConversationMessage.message)
                .where(ConversationMessage.key == key)
                .order_by(ConversationMessage.id.desc())
                .limit(window)
            )
            return list(reversed(messages.all()))

    async def append_messages(self, key: str, messages: Sequence[Mapping[str, Any]]) -> None:
        """Add messages to the conversation under `key`, keeping its last MAX_KEPT."""
        if not messages:
            return
        now = utc_now()
        rows = [{"key": key, "message": dict(message), "created_at": now} for message in messages]
        async with self._engines.writing() as session:
            await session.execute(insert(ConversationMessage), rows)
            oldest_kept = (
                select(ConversationMessage.id)
                .where(ConversationMessage.key == key)
                .order_by(ConversationMessage.id.desc())
                .offset(self._max_kept - 1)
                .limit(1)
                .scalar_subquery()
            )
            await session.execute(
                delete(ConversationMessage).where(
                    ConversationMessage.key == key, ConversationMessage.id < oldest_kept
                )
            )
