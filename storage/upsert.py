"""`INSERT … ON CONFLICT` for both databases, the one statement bulk writes are built on."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.dml import Insert

from storage.models import Base

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql


def upsert(
    dialect: str, model: type[Base], *, keys: Sequence[str], update: Iterable[str]
) -> Insert:
    """Insert rows of `model`'s table; a row whose `keys` exist already gets the `update` columns
    from the new row instead (nothing at all when `update` is empty).

    Given a list of parameter sets, it runs as one executemany: no round trip per row.
    """
    statement: sqlite.Insert | postgresql.Insert
    if dialect == "sqlite":
        statement = sqlite.insert(model)
    else:  # imported here: loading the PostgreSQL dialect costs SQLite users start-up time
        from sqlalchemy.dialects import postgresql

        statement = postgresql.insert(model)
    columns = list(update)
    if not columns:
        return statement.on_conflict_do_nothing(index_elements=list(keys))
    return statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={column: statement.excluded[column] for column in columns},
    )
