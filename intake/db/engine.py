"""Engine and session set-up for PostgreSQL (asyncpg) and the embedded SQLite default."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    AsyncSessionTransaction,
    async_sessionmaker,
    create_async_engine,
)

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
    """Sessions whose `session.begin()` blocks take their turn on SQLite (see `WriteTurns`); on PostgreSQL
    plain sessions, which row locks keep apart."""
    if engine.dialect.name != "sqlite":
        return async_sessionmaker(engine, expire_on_commit=False)
    return async_sessionmaker(engine, class_=_TurnTakingSession, expire_on_commit=False, turns=write_turns(engine))


class WriteTurns:
    """SQLite has one writer at a time. Left to themselves, the API's transactions wait for each other in
    SQLite's busy handler, which polls (sleeping up to 100 ms) in no order: under a burst some waited past the
    busy timeout and failed with "database is locked". Here they queue instead, first come first served, on an
    asyncio lock in this process; SQLite's busy timeout is left for the other processes (the worker and beat).

    A task that already holds its turn may open another transaction (the lock is re-entered, not waited for).
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
        self._holder: asyncio.Task[Any] | None = None
        self._depth = 0

    async def acquire(self) -> None:
        task = asyncio.current_task()
        if task is not None and task is self._holder:
            self._depth += 1
            return
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        await lock.acquire()
        self._holder, self._depth = task, 1

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._holder = None
            self._locks[asyncio.get_running_loop()].release()

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()


_TURNS: weakref.WeakKeyDictionary[Engine, WriteTurns] = weakref.WeakKeyDictionary()


def write_turns(engine: AsyncEngine) -> WriteTurns:
    """The one queue of writers for this SQLite engine (every session of it, and `write_submission`)."""
    turns = _TURNS.get(engine.sync_engine)
    if turns is None:
        turns = _TURNS[engine.sync_engine] = WriteTurns()
    return turns


class _TurnTakingSession(AsyncSession):
    def __init__(self, *args: Any, turns: WriteTurns, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._turns = turns

    def begin(self) -> AsyncSessionTransaction:
        return _TurnTakingTransaction(self, self._turns)


class _TurnTakingTransaction(AsyncSessionTransaction):
    """`async with session.begin():` that first waits for this process's turn to write, and gives it back
    after the commit or rollback."""

    __slots__ = ("_turns",)

    def __init__(self, session: AsyncSession, turns: WriteTurns):
        super().__init__(session)
        self._turns = turns

    async def __aenter__(self) -> AsyncSessionTransaction:
        await self._turns.acquire()
        try:
            return await super().__aenter__()
        except BaseException:
            self._turns.release()
            raise

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        try:
            await super().__aexit__(type_, value, traceback)
        finally:
            self._turns.release()
