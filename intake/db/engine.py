"""Engine and session set-up for PostgreSQL (asyncpg) and the embedded SQLite default."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from intake.db import dialect
from intake.settings import DatabaseSettings


def _api_sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
    dialect.sqlite_pragmas(dbapi_connection, record, synchronous_normal=True)


def create_engine(settings: DatabaseSettings, *, pre_ping: bool = True) -> AsyncEngine:
    """An engine that never writes statement parameters (patient data) into errors or logs.

    `pre_ping` tests each connection as it leaves the pool; on asyncpg that is BEGIN, `;` and
    ROLLBACK: three round trips before every request's own statements. The API turns it off: a
    connection that died with the server fails its first statement, which invalidates the whole
    pool, and the intake submission retries on a fresh connection.

    The pool has a fixed size and no overflow: an overflow connection is closed as soon as it is
    given back to a pool with enough idle ones, and under load (one short statement per
    submission) that meant a new PostgreSQL backend every few requests. A request that finds all
    connections busy waits for one.
    """
    kwargs: dict[str, Any] = {
        "echo": settings.echo,
        "hide_parameters": True,
        "pool_pre_ping": pre_ping,
        "json_serializer": _json_text,
    }
    if not settings.is_sqlite:
        kwargs.update(pool_size=settings.pool_size, max_overflow=0)
    engine = create_async_engine(settings.url, **kwargs)
    if settings.is_sqlite:
        event.listen(engine.sync_engine, "connect", _api_sqlite_pragmas)
    return engine


def _json_text(value: Any) -> str:
    """JSON columns' text, by msgspec: several times faster than json.dumps on a screening's answers."""
    return msgspec.json.encode(value).decode()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)
