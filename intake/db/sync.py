"""Synchronous engine for Celery workers (psycopg on PostgreSQL, sqlite3 on SQLite): same URL, sync driver."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from intake.settings import DatabaseSettings

_SYNC_DRIVERS = {"postgresql+asyncpg": "postgresql+psycopg", "sqlite+aiosqlite": "sqlite"}


def sync_url(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{_SYNC_DRIVERS.get(scheme, scheme)}://{rest}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_sync_engine(settings: DatabaseSettings) -> Engine:
    url = sync_url(settings.url)
    kwargs: dict[str, Any] = {"hide_parameters": True, "pool_pre_ping": True}
    if not settings.is_sqlite:
        kwargs.update(pool_size=2, max_overflow=4)
    engine = create_engine(url, **kwargs)
    if settings.is_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def create_sync_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
