"""Flows and their saved versions: every save is a new version; restoring one saves again."""

from __future__ import annotations

import builtins
import secrets
import string
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.engines import DatabaseEngines
from storage.models import Flow, FlowVersion, utc_now
from storage.records import DuplicateName, FlowRecord, FlowVersionRecord, NotFound, VersionConflict

UNTITLED = "Untitled flow"
_ID_ALPHABET = string.ascii_lowercase + string.digits
_ID_LENGTH = 12  # 36**12 ≈ 5e18: no collision in practice, short enough for a URL

#: Told about every committed change of a flow: (flow_id, the flow now, or None if deleted).
FlowWatcher = Callable[[str, "FlowRecord | None"], None]


def new_flow_id() -> str:
    """A short random id, safe in URLs and shells (no leading dash)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))


def flow_name(document: Mapping[str, Any]) -> str:
    """The name a flow is listed and found by: its document's `name`, else "Untitled flow"."""
    name = document.get("name")
    return (name.strip() or UNTITLED) if isinstance(name, str) else UNTITLED


class FlowRepository:
    """`db.flows`: create, read, save and delete flows; list their versions."""

    def __init__(self, engines: DatabaseEngines) -> None:
        self._engines = engines
        self._watchers: list[FlowWatcher] = []
        # flow id -> (version, active) as this process last knew it (see `follow`)
        self._known: dict[str, tuple[int, bool]] | None = None

    def watch(self, watcher: FlowWatcher) -> None:
        """Call `watcher(flow_id, flow or None)` after each committed create, save, restore,
        (de)activation or delete made through this repository (triggers re-read flows so),
        and for each one another process made, as `follow` finds them."""
        self._watchers.append(watcher)

    def _changed(self, flow_id: str, flow: FlowRecord | None) -> None:
        if self._known is not None:
            if flow is None:
                self._known.pop(flow_id, None)
            else:
                self._known[flow_id] = (flow.version, flow.active)
        for watcher in self._watchers:
            watcher(flow_id, flow)

    async def follow(self) -> int:
        """Tell the watchers of the flows other processes sharing the database saved,
        (de)activated or deleted since the last call, as if the change was made here; how
        many there were. Only changes of flows that are or were active count (nothing else
        listens). The first call notes how the flows are and tells nothing."""
        async with self._engines.reading() as session:
            rows = (await session.execute(select(Flow.id, Flow.version, Flow.active))).all()
        now = {row.id: (row.version, bool(row.active)) for row in rows}
        known, self._known = self._known, now
        if known is None:
            return 0
        told = 0
        for flow_id in now.keys() | known.keys():
            before, after = known.get(flow_id), now.get(flow_id)
            was_active = before is not None and before[1]
            is_active = after is not None and after[1]
            if before == after or not (was_active or is_active):
                continue
            try:  # read it again: it may have changed once more since
                flow: FlowRecord | None = await self.get(flow_id)
            except NotFound:
                flow = None
            self._changed(flow_id, flow)
            told += 1
        return told

    async def create(
        self, document: Mapping[str, Any], *, message: str | None = None
    ) -> FlowRecord:
        """A new flow (inactive) at version 1. DuplicateName if another flow has its name."""
        now = utc_now()
        flow = Flow(
            id=new_flow_id(),
            name=flow_name(document),
            document=dict(document),
            version=1,
            active=False,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self._engines.writing() as session:
                session.add(flow)
                session.add(_version_of(flow, message))
        except IntegrityError as exc:
            raise _duplicate_name(flow.name) from exc
        record = _record(flow)
        self._changed(record.id, record)
        return record

    async def get(self, flow_id: str) -> FlowRecord:
        """The flow with this id; NotFound if there is none."""
        async with self._engines.reading() as session:
            flow = await session.get(Flow, flow_id)
        if flow is None:
            raise _not_found(flow_id)
        return _record(flow)

    async def find(self, ref: str) -> FlowRecord | None:
        """The flow with this id, else the one with this name (how sub-flows name theirs)."""
        async with self._engines.reading() as session:
            flow = await session.get(Flow, ref)
            if flow is None:
                flow = await session.scalar(select(Flow).where(Flow.name == ref))
        return None if flow is None else _record(flow)

    async def list(self, *, limit: int = 100, offset: int = 0) -> tuple[list[FlowRecord], int]:
        """A page of flows, most recently saved first, and how many there are in all."""
        async with self._engines.reading() as session:
            flows = await session.scalars(
                select(Flow).order_by(Flow.updated_at.desc(), Flow.id).limit(limit).offset(offset)
            )
            records = [_record(flow) for flow in flows]
            total = await session.scalar(select(func.count()).select_from(Flow))
        return records, total or 0

    async def update(
        self,
        flow_id: str,
        document: Mapping[str, Any],
        *,
        base_version: int | None = None,
        message: str | None = None,
    ) -> FlowRecord:
        """Save `document` as the flow's next version.

        With `base_version` (the version the editor loaded), VersionConflict when another
        save came in between. NotFound, DuplicateName as usual.
        """
        name = flow_name(document)
        try:
            async with self._engines.writing() as session:
                record = await self._save(session, flow_id, dict(document), base_version, message)
        except IntegrityError as exc:
            raise _duplicate_name(name) from exc
        self._changed(flow_id, record)
        return record

    async def delete(self, flow_id: str) -> None:
        """Delete the flow with its versions, webhook tokens and schedules. Its runs stay,
        with `flow_id` None, until retention prunes them. NotFound if there is no such flow."""
        async with self._engines.writing() as session:
            result = await session.execute(delete(Flow).where(Flow.id == flow_id))
        if not _rowcount(result):
            raise _not_found(flow_id)
        self._changed(flow_id, None)

    async def versions(self, flow_id: str) -> builtins.list[FlowVersionRecord]:
        """Every saved version of the flow, newest first."""
        async with self._engines.reading() as session:
            versions = (
                await session.scalars(
                    select(FlowVersion)
                    .where(FlowVersion.flow_id == flow_id)
                    .order_by(FlowVersion.version.desc())
                )
            ).all()
        if not versions:
            raise _not_found(flow_id)
        return [
            FlowVersionRecord(
                flow_id=version.flow_id,
                version=version.version,
                document=version.document,
                message=version.message,
                created_at=version.created_at,
            )
            for version in versions
        ]

    async def restore(
        self, flow_id: str, version: int, *, message: str | None = None
    ) -> FlowRecord:
        """Save an earlier version's document as the flow's newest version."""
        async with self._engines.writing() as session:
            old = await session.get(FlowVersion, (flow_id, version))
            if old is None:
                if await session.get(Flow, flow_id) is None:
                    raise _not_found(flow_id)
                raise NotFound(f"Flow {flow_id} has no version {version}.")
            document = old.document
            try:
                record = await self._save(
                    session, flow_id, document, None, message or f"Restored version {version}"
                )
            except IntegrityError as exc:
                raise _duplicate_name(flow_name(document)) from exc
        self._changed(flow_id, record)
        return record

    async def set_active(self, flow_id: str, active: bool) -> FlowRecord:
        """Turn the flow's webhook and schedule triggers on or off (kept across restarts)."""
        return await self._change(flow_id, active=active)

    async def set_retention(
        self, flow_id: str, *, days: int | None, max_runs: int | None
    ) -> FlowRecord:
        """Keep this flow's runs `days` days and at most `max_runs` of them (None: the
        defaults `Database.prune` is given)."""
        for label, value in (("days", days), ("max_runs", max_runs)):
            if value is not None and value < 1:
                raise ValueError(f"retention {label} must be at least 1, or None")
        return await self._change(flow_id, retention_days=days, retention_max_runs=max_runs)

    async def active(self) -> builtins.list[FlowRecord]:
        """Every active flow, by name."""
        async with self._engines.reading() as session:
            flows = await session.scalars(select(Flow).where(Flow.active).order_by(Flow.name))
            return [_record(flow) for flow in flows]

    async def _save(
        self,
        session: AsyncSession,
        flow_id: str,
        document: dict[str, Any],
        base_version: int | None,
        message: str | None,
    ) -> FlowRecord:
        # One UPDATE both checks the base version and takes the next number, so two saves
        # at once can neither both pass the check nor get the same version.
        statement = update(Flow).where(Flow.id == flow_id)
        if base_version is not None:
            statement = statement.where(Flow.version == base_version)
        statement = statement.values(
            document=document,
            name=flow_name(document),
            version=Flow.version + 1,
            updated_at=utc_now(),
        ).returning(Flow)
        flow = (await session.scalars(statement)).one_or_none()
        if flow is None:
            current = await session.scalar(select(Flow.version).where(Flow.id == flow_id))
            if current is None:
                raise _not_found(flow_id)
            assert base_version is not None
            raise VersionConflict(flow_id, base_version, current)
        session.add(_version_of(flow, message))
        return _record(flow)

    async def _change(self, flow_id: str, **values: Any) -> FlowRecord:
        async with self._engines.writing() as session:
            statement = update(Flow).where(Flow.id == flow_id).values(**values).returning(Flow)
            flow = (await session.scalars(statement)).one_or_none()
        if flow is None:
            raise _not_found(flow_id)
        record = _record(flow)
        self._changed(flow_id, record)
        return record


def _version_of(flow: Flow, message: str | None) -> FlowVersion:
    return FlowVersion(
        flow_id=flow.id,
        version=flow.version,
        document=flow.document,
        message=message,
        created_at=flow.updated_at,
    )


def _record(flow: Flow) -> FlowRecord:
    return FlowRecord(
        id=flow.id,
        name=flow.name,
        document=flow.document,
        version=flow.version,
        active=flow.active,
        created_at=flow.created_at,
        updated_at=flow.updated_at,
        retention={"days": flow.retention_days, "max_runs": flow.retention_max_runs},
    )


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _not_found(flow_id: str) -> NotFound:
    return NotFound(f"There is no flow with id {flow_id}.")


def _duplicate_name(name: str) -> DuplicateName:
    return DuplicateName(f"Another flow is already called '{name}'. Choose another name.")
