"""What differs between PostgreSQL and the embedded SQLite, in one place: connection pragmas, upserts, row locks.

Everything else in the code is written once for both; a branch on the database belongs here.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import JSON, CursorResult, Select, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Session

JSONDocument = JSON().with_variant(JSONB(), "postgresql")
"""JSONB on PostgreSQL (indexable, compact), plain JSON text on SQLite."""

Bind = Session | AsyncSession | Connection | Engine


def is_postgresql(bind: Bind) -> bool:
    if isinstance(bind, Session | AsyncSession):
        return bind.get_bind().dialect.name == "postgresql"
    return bind.dialect.name == "postgresql"


def insert(bind: Bind, target: type[DeclarativeBase] | Table) -> Any:
    """An INSERT that knows ON CONFLICT (both databases spell it the same; SQLAlchemy has one class each)."""
    return (postgresql if is_postgresql(bind) else sqlite).insert(target)


def skip_locked(statement: Select[Any], bind: Bind) -> Select[Any]:
    """`FOR UPDATE SKIP LOCKED` on PostgreSQL. SQLite has one writer at a time and no row locks: there the
    caller's conditional `UPDATE … RETURNING` is what makes a claim happen once."""
    return statement.with_for_update(skip_locked=True) if is_postgresql(bind) else statement


async def lock_row(session: AsyncSession, model: Any, row_id: uuid.UUID) -> bool:
    """Hold the row (of a model with `id` and `updated_at`) until commit; False if there is none.

    PostgreSQL: `SELECT ... FOR UPDATE`. SQLite locks the whole database, and only from a transaction's
    first write: an UPDATE that changes nothing takes that lock now, so what is read next cannot change
    under us (a plain read first would let another writer slip in between).
    """
    if is_postgresql(session):
        found = await session.execute(select(model.id).where(model.id == row_id).with_for_update())
        return found.first() is not None
    result = await session.execute(
        update(model)
        .where(model.id == row_id)
        .values(updated_at=model.updated_at)
        .execution_options(synchronize_session=False)
    )
    return cast("CursorResult[Any]", result).rowcount > 0


SQLITE_BUSY_TIMEOUT_MS = 60_000
"""How long a SQLite writer waits for another process's write (the API's for a worker's, or the other way
round) before it fails with "database is locked". Each holds the lock for milliseconds, and the API queues
its own writers (`intake.db.engine.WriteTurns`), so a healthy wait stays far below this; it was 10 s, which a
burst of submissions, with the worker writing too, outlasted."""


def is_sqlite_busy(exc: BaseException) -> bool:
    """SQLite's "database is locked" (SQLITE_BUSY): another process held the write lock past the busy timeout."""
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def sqlite_pragmas(dbapi_connection: Any, _record: Any, *, synchronous_normal: bool = False) -> None:
    # WAL lets the API read while a worker writes; foreign keys are off in SQLite unless asked for.
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # WAL stays on in the file once set. Setting it again is not free: it fails at once, with no busy wait,
    # while another process writes.
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    if synchronous_normal:
        cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "JSONDocument",
    "insert",
    "is_postgresql",
    "is_sqlite_busy",
    "lock_row",
    "skip_locked",
    "sqlite_pragmas",
]
