"""Writes one submission's rows in one transaction: the busiest write of the service, kept lean.

The statements are SQLAlchemy Core, written once. On PostgreSQL they are compiled once for
asyncpg and run on the pooled connection's asyncpg driver directly: SQLAlchemy's execution
layer (compile cache lookups, result objects, the greenlet hop per statement) cost more CPU per
submission than the driver itself (bench/intake.py's profile). On SQLite they run through
SQLAlchemy as usual.

Either way a caller sees the same two failures: `WriteConflict` (a concurrent submission took a
unique key first) and `Disconnected` (the connection died; the pool was reset: try again).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, Protocol, cast

import asyncpg
from sqlalchemy import Table, bindparam, case, insert, or_, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from intake.db.models import Lead

_leads = cast(Table, Lead.__table__)
_FIND_LEAD = (
    select(_leads.c.id, _leads.c.phone)
    .where(or_(_leads.c.email == bindparam("email"), _leads.c.phone == bindparam("phone")))
    .order_by(case((_leads.c.email == bindparam("email"), 0), else_=1), _leads.c.created_at)
    .limit(1)
    .with_for_update()
)
_LEAD_ID = "lead_id_"


class WriteConflict(Exception):
    """A concurrent write took a unique key first (the person's email, or the idempotency key)."""


class Disconnected(Exception):
    """The connection died (the server restarted); the pool was reset, so a new attempt gets a new one."""


class SubmissionWriter(Protocol):
    async def find_lead(self, email: str, phone: str | None) -> tuple[uuid.UUID, str | None] | None:
        """The person's lead (the same email first, else the same phone), locked until commit: id, phone."""

    async def insert(self, table: Table, row: dict[str, Any]) -> None: ...

    async def update_lead(self, lead_id: uuid.UUID, values: dict[str, Any]) -> None: ...


@asynccontextmanager
async def submission_writer(engine: AsyncEngine) -> AsyncIterator[SubmissionWriter]:
    """A writer inside one transaction, committed when the block ends (rolled back on an error)."""
    if engine.dialect.driver == "asyncpg":
        async with _asyncpg_writer(engine) as writer:
            yield writer
        return
    try:
        async with engine.begin() as conn:
            yield _CoreWriter(conn)
    except IntegrityError as exc:
        raise WriteConflict from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise Disconnected from exc
        raise


@asynccontextmanager
async def _asyncpg_writer(engine: AsyncEngine) -> AsyncIterator[SubmissionWriter]:
    async with engine.connect() as conn:
        # SQLAlchemy's adapter has no transaction open on this connection, so giving it back to
        # the pool needs no round trip; asyncpg's own transaction commits or rolls back here.
        driver: asyncpg.Connection = (await conn.get_raw_connection()).driver_connection
        try:
            async with driver.transaction():
                yield _AsyncpgWriter(driver, engine.dialect)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise WriteConflict from exc
        except Exception as exc:
            if not (isinstance(exc, _GONE) or driver.is_closed()):
                raise
            await conn.invalidate()
            raise Disconnected from exc


# A connection the server ended (SQLSTATE classes 08 and 57: restart, failover, terminated backend),
# or one that is already closed on our side.
_GONE = (OSError, asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError, asyncpg.InterfaceError)


class _CoreWriter:
    def __init__(self, conn: AsyncConnection):
        self._conn = conn

    async def find_lead(self, email: str, phone: str | None) -> tuple[uuid.UUID, str | None] | None:
        row = (await self._conn.execute(_FIND_LEAD, {"email": email, "phone": phone})).first()
        return (row.id, row.phone) if row is not None else None

    async def insert(self, table: Table, row: dict[str, Any]) -> None:
        await self._conn.execute(_insert(table), row)

    async def update_lead(self, lead_id: uuid.UUID, values: dict[str, Any]) -> None:
        await self._conn.execute(_UPDATE_LEAD, {_LEAD_ID: lead_id, **values})


class _AsyncpgWriter:
    def __init__(self, driver: asyncpg.Connection, dialect: Dialect):
        self._driver = driver
        self._dialect = dialect

    async def find_lead(self, email: str, phone: str | None) -> tuple[uuid.UUID, str | None] | None:
        statement = _compiled(self._dialect, _FIND_LEAD, ())
        row = await self._driver.fetchrow(statement.sql, *statement.args({"email": email, "phone": phone}))
        return (row["id"], row["phone"]) if row is not None else None

    async def insert(self, table: Table, row: dict[str, Any]) -> None:
        statement = _compiled(self._dialect, _insert(table), tuple(row))
        await self._driver.execute(statement.sql, *statement.args(row))

    async def update_lead(self, lead_id: uuid.UUID, values: dict[str, Any]) -> None:
        statement = _compiled(self._dialect, _UPDATE_LEAD, tuple(values))
        await self._driver.execute(statement.sql, *statement.args({_LEAD_ID: lead_id, **values}))


class _Compiled:
    """A Core statement compiled once for asyncpg: its SQL, and how to turn named values into $n args."""

    def __init__(self, statement: ClauseElement, dialect: Dialect, column_keys: Iterable[str] | None = None):
        keys = list(column_keys) if column_keys else None
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=keys))
        if compiled.insert_prefetch or compiled.update_prefetch:
            # A Python-side default SQLAlchemy would fill in at execution: the caller must give it.
            missing = [c.name for c in (*compiled.insert_prefetch, *compiled.update_prefetch)]
            raise ValueError(f"values missing for columns with Python defaults: {missing}")
        self.sql = str(compiled)
        names = compiled.positiontup or []
        constants = compiled.params
        self._plan: list[tuple[str, Any, Callable[[Any], Any] | None]] = [
            (
                name,
                constants.get(name),
                compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect),
            )
            for name in names
        ]

    def args(self, values: dict[str, Any]) -> list[Any]:
        out = []
        for name, constant, process in self._plan:
            value = values.get(name, constant)
            out.append(process(value) if process is not None and value is not None else value)
        return out


@functools.cache
def _compiled(dialect: Dialect, statement: ClauseElement, column_keys: tuple[str, ...]) -> _Compiled:
    """Once per statement and set of columns given (the statements are module-level, so they hash stably)."""
    return _Compiled(statement, dialect, column_keys)


_UPDATE_LEAD = update(_leads).where(_leads.c.id == bindparam(_LEAD_ID))


@functools.cache
def _insert(table: Table) -> Any:
    return insert(table)


__all__ = ["Disconnected", "SubmissionWriter", "WriteConflict", "submission_writer"]
