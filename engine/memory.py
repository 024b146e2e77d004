"""Conversation memory kept in this process: the default when no storage is attached."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any

MAX_KEPT = 1000


class InMemoryConversations:
    """Implements `engine.node.ConversationMemory`; keeps the last 1000 messages per key."""

    def __init__(self) -> None:
        self._conversations: defaultdict[str, deque[dict[str, Any]]] = defaultdict(
            lambda: deque(maxlen=MAX_KEPT)
        )

    async def load_messages(self, key: str, window: int) -> list[dict[str, Any]]:
        messages = self._conversations.get(key)
        if not messages or window <= 0:
            return []
        return list(messages)[-window:]

    async def append_messages(self, key: str, messages: Sequence[dict[str, Any]]) -> None:
        self._conversations[key].extend(dict(m) for m in messages)
