"""Synchronous engine for Celery workers (psycopg on PostgreSQL, sqlite3 on SQLite): same URL, sync driver."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from intake.db import dialect
from intake.settings import DatabaseSettings

_SYNC_DRIVERS = {"postgresql+asyncpg": "postgresql+psycopg", "sqlite+aiosqlite": "sqlite"}
PING_IDLE_AFTER = 5.0
"""A pooled connection idle longer than this is pinged before use; a busy worker's are not (one round trip
per checkout saved). A server that drops a busy connection fails that statement, and the task retries."""


def sync_url(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{_SYNC_DRIVERS.get(scheme, scheme)}://{rest}"


def _checked_in(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """SQLAlchemy's documented pessimistic check, only for connections idle past PING_IDLE_AFTER: a dead
    one raises DisconnectionError, and the pool replaces it with a new connection."""
    idle_since = record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since <= PING_IDLE_AFTER:
        return
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        dbapi_connection.rollback()  # leave no transaction open behind the ping
    except Exception as exc:
        raise DisconnectionError(f"idle connection is gone: {type(exc).__name__}") from None


def create_sync_engine(settings: DatabaseSettings) -> Engine:
    url = sync_url(settings.url)
    kwargs: dict[str, Any] = {"hide_parameters": True}
    if not settings.is_sqlite:
        kwargs.update(pool_size=2, max_overflow=4, pool_pre_ping=False)
    engine = create_engine(url, **kwargs)
    if settings.is_sqlite:
        event.listen(engine, "connect", dialect.sqlite_pragmas)
    else:
        event.listen(engine, "checkin", _checked_in)
        event.listen(engine, "checkout", _ping_if_idle)
    return engine


def create_sync_sessionmaker(engine: Engine, *, autocommit: bool = False) -> sessionmaker[Session]:
    """`autocommit`: every statement commits on its own, with no BEGIN or COMMIT round trips; for work
    whose statements each stand alone (the delivery sender's conditional claim, then its outcome)."""
    bind = engine.execution_options(isolation_level="AUTOCOMMIT") if autocommit else engine
    return sessionmaker(bind, expire_on_commit=False)
