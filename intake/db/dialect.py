"""What differs between PostgreSQL and the embedded SQLite, in one place: connection pragmas, upserts, row locks.

Everything else in the code is written once for both; a branch on the database belongs here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Select, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine
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


def sqlite_pragmas(dbapi_connection: Any, _record: Any, *, synchronous_normal: bool = False) -> None:
    # WAL lets the API read while a worker writes; foreign keys are off in SQLite unless asked for.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    if synchronous_normal:
        cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


__all__ = ["JSONDocument", "insert", "is_postgresql", "skip_locked", "sqlite_pragmas"]
