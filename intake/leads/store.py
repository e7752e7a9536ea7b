"""Writes one submission's rows atomically: the busiest write of the service, kept lean.

A submission finds the person's lead (the same email first, else the same phone) and locks it,
updates it or inserts a new one, and inserts the screening, its outbox message and the consent.

* On PostgreSQL that is ONE statement (data-modifying CTEs), in the implicit transaction of that
  statement, run on the pooled connection's asyncpg driver directly. One round trip instead of
  seven (BEGIN, five statements, COMMIT): the round trips, and SQLAlchemy's execution layer
  around them, were most of a submission's CPU (bench/intake.py's profile). The statement is
  built with SQLAlchemy Core from the tables' columns and compiled once (`submission_sql`, which
  bench/intake.py's ceiling runs too). With an idempotency record to keep, it and the record
  share an explicit transaction.
* On SQLite the same rows are written statement by statement through SQLAlchemy Core.

Either way: a new lead gets the row given; a lead found gets the newest details, except that a
phone or ZIP left out (None) keeps the one on file, and so does the search text's phone (the
search text given was made without a phone: the kept phone's digits are appended, see
`intake.leads.contact.search_text`). A caller sees the same two failures: `WriteConflict` (a
concurrent submission took a unique key first) and `Disconnected` (the connection died; the pool
was reset: try again); on SQLite also `Busy` (another process kept the write lock past the busy
timeout: try again).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import asyncpg
from sqlalchemy import (
    CTE,
    BindParameter,
    Select,
    String,
    Table,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from intake.db.dialect import is_sqlite_busy
from intake.db.engine import write_turns
from intake.db.models import Consent, IdempotencyRecord, Lead, OutboxMessage, Screening

_leads = cast(Table, Lead.__table__)
_screenings = cast(Table, Screening.__table__)
_outbox = cast(Table, OutboxMessage.__table__)
_consents = cast(Table, Consent.__table__)
_idempotency = cast(Table, IdempotencyRecord.__table__)

# Columns of a found lead that a submission leaves alone when it gives no value (None).
_KEPT_WHEN_NONE = ("phone", "zip")
# Columns a submission never changes on a lead found.
_SET_ONCE = ("id", "created_at", "status")
_SEARCH_TEXT_LENGTH = cast(String, _leads.c.search_text.type).length


class WriteConflict(Exception):
    """A concurrent write took a unique key first (the person's email, or the idempotency key)."""


class Disconnected(Exception):
    """The connection died (the server restarted); the pool was reset, so a new attempt gets a new one."""


class Busy(Exception):
    """SQLite: another process held the write lock for longer than the busy timeout; try again."""


@dataclass(frozen=True, slots=True)
class SubmissionRows:
    """The rows of one submission. `lead` is the row of a new lead (its id is used only then);
    `screening` and `consent` get the lead's id as `lead_id`. Every dict has the same keys at
    every call (None where there is no value), so the statement is compiled once."""

    lead: dict[str, Any]
    screening: dict[str, Any]
    outbox: dict[str, Any]
    consent: dict[str, Any]


IdempotencyRow = Callable[[uuid.UUID], dict[str, Any]]
"""Given the lead's id, the idempotency record to insert in the same transaction."""


async def write_submission(engine: AsyncEngine, rows: SubmissionRows, idempotency: IdempotencyRow | None) -> uuid.UUID:
    """Write the submission's rows atomically; the lead's id (found, or the new one)."""
    if engine.dialect.driver == "asyncpg":
        return await _write_asyncpg(engine, rows, idempotency)
    try:
        # SQLite: one writer at a time. The API's writers queue in this process (a burst waits its turn);
        # SQLite's busy timeout covers a worker writing at the same moment.
        async with write_turns(engine).turn(), engine.begin() as conn:
            return await _write_core(conn, rows, idempotency)
    except IntegrityError as exc:
        raise WriteConflict from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise Disconnected from exc
        if is_sqlite_busy(exc):
            raise Busy from exc
        raise


# ---------------------------------------------------------------------------------------------
# PostgreSQL: one statement on the asyncpg driver.
# ---------------------------------------------------------------------------------------------


async def _write_asyncpg(engine: AsyncEngine, rows: SubmissionRows, idempotency: IdempotencyRow | None) -> uuid.UUID:
    dialect = engine.dialect
    submit = submission_sql(rows, dialect)
    args = submit.args(rows)
    async with engine.connect() as conn:
        # SQLAlchemy's adapter has no transaction open on this connection, so giving it back to
        # the pool needs no round trip.
        driver: asyncpg.Connection = (await conn.get_raw_connection()).driver_connection
        try:
            if idempotency is None:
                lead_id: uuid.UUID = await driver.fetchval(submit.sql, *args)
            else:
                async with driver.transaction():
                    lead_id = await driver.fetchval(submit.sql, *args)
                    record = idempotency(lead_id)
                    keep = _compiled(dialect, _insert(_idempotency), tuple(record))
                    await driver.execute(keep.sql, *keep.args(record))
            return lead_id
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


def _parts(rows: SubmissionRows) -> tuple[dict[str, Any], ...]:
    return rows.lead, rows.screening, rows.outbox, rows.consent


_ROWS = ("lead", "screening", "outbox", "consent")
# Parameters are named by row prefix and column: `l_email` is the lead's "email".
_PREFIXES = ("l_", "s_", "o_", "c_")


class SubmissionSql:
    """The submission statement compiled once for asyncpg, and where each of its $n values comes from."""

    sql: str
    """The PostgreSQL text, with $1, $2, … for asyncpg's `fetchval` (it returns the lead's id)."""
    params: tuple[tuple[str, str], ...]
    """What $1, $2, … are, in order: (row, column), row one of "lead", "screening", "outbox", "consent"."""

    def __init__(self, dialect: Dialect, keys: tuple[tuple[str, ...], ...]):
        compiled = _Compiled(_submission_statement(*keys), dialect)
        plan = []
        for name, _, process in compiled.plan:
            if name[:2] not in _PREFIXES or name[2:] not in keys[_PREFIXES.index(name[:2])]:
                raise ValueError(f"the submission statement has a parameter no row gives: {name}")
            plan.append((_PREFIXES.index(name[:2]), name[2:], process))
        self.sql = compiled.sql
        self.params = tuple((_ROWS[part], key) for part, key, _ in plan)
        self._plan = plan

    def args(self, rows: SubmissionRows) -> list[Any]:
        """The values of $1, $2, … from these rows (which have the keys the statement was built for),
        converted as SQLAlchemy would (e.g. JSON to text)."""
        parts = _parts(rows)
        out = []
        for part, key, process in self._plan:
            value = parts[part][key]
            out.append(process(value) if process is not None and value is not None else value)
        return out


_ASYNCPG = postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]


def submission_sql(rows: SubmissionRows, dialect: Dialect | None = None) -> SubmissionSql:
    """The one PostgreSQL statement that writes a submission with rows of these keys (their values
    are not used), on asyncpg: the app's own, and the one bench/intake.py's ceiling runs.

    Built from SQLAlchemy Core and compiled once per dialect and set of keys (cached): run
    `result.sql` with `*result.args(rows)`. `dialect` is the engine's (its JSON serializer is used);
    by default, asyncpg's PostgreSQL dialect with SQLAlchemy's defaults.
    """
    return _submission(dialect or _ASYNCPG, tuple(tuple(part) for part in _parts(rows)))


@functools.cache
def _submission(dialect: Dialect, keys: tuple[tuple[str, ...], ...]) -> SubmissionSql:
    return SubmissionSql(dialect, keys)


def _submission_statement(
    lead: tuple[str, ...],
    screening: tuple[str, ...],
    outbox: tuple[str, ...],
    consent: tuple[str, ...],
) -> Select[tuple[uuid.UUID]]:
    """The whole submission as one PostgreSQL statement, for rows with these keys (built once per
    set of keys, by `_submission`): data-modifying CTEs, in SQLAlchemy Core."""
    binds: dict[str, BindParameter[Any]] = {}

    def p(prefix: str, table: Table, column: str) -> BindParameter[Any]:
        """The value given for a column, one parameter wherever it stands. Typed by the column, so
        asyncpg's dialect renders `$n::TYPE` and PostgreSQL knows its type even in a bare SELECT."""
        name = prefix + column
        if name not in binds:
            binds[name] = bindparam(name, type_=table.c[column].type)
        return binds[name]

    email, phone = p("l_", _leads, "email"), p("l_", _leads, "phone")
    found = (
        select(_leads.c.id, _leads.c.phone)
        .where(or_(_leads.c.email == email, _leads.c.phone == phone))
        .order_by(case((_leads.c.email == email, literal_column("0")), else_=literal_column("1")), _leads.c.created_at)
        .limit(literal_column("1"))
        .with_for_update()
        .cte("found")
    )

    kept_phone_digits = func.coalesce(func.ltrim(found.c.phone, literal_column("'+'")), literal_column("''"))
    assignments: dict[str, Any] = {}
    for c in lead:
        if c in _SET_ONCE:
            continue
        given = p("l_", _leads, c)
        if c in _KEPT_WHEN_NONE:
            assignments[c] = func.coalesce(given, _leads.c[c])
        elif c == "search_text":
            appended = func.left(given.concat(kept_phone_digits), literal_column(str(_SEARCH_TEXT_LENGTH)))
            assignments[c] = case((phone.is_(None), appended), else_=given)
        else:
            assignments[c] = given
    updated = update(_leads).values(assignments).where(_leads.c.id == found.c.id).returning(_leads.c.id).cte("updated")
    inserted = (
        insert(_leads)
        .from_select(lead, select(*(p("l_", _leads, c) for c in lead)).where(~exists().select_from(found)))
        .returning(_leads.c.id)
        .cte("inserted")
    )
    found_or_new = union_all(select(updated.c.id), select(inserted.c.id)).cte("lead")

    def with_lead(name: str, prefix: str, table: Table, columns: tuple[str, ...]) -> CTE:
        """The row given, with the lead's id (found or new) as `lead_id`."""
        values = select(*(p(prefix, table, c) for c in columns), found_or_new.c.id)
        return insert(table).from_select((*columns, "lead_id"), values).cte(name)

    # Not referred to by the final SELECT: add_cte() renders them all the same.
    return select(found_or_new.c.id).add_cte(
        with_lead("screening", "s_", _screenings, screening),
        insert(_outbox).values({c: p("o_", _outbox, c) for c in outbox}).cte("outbox"),
        with_lead("consent", "c_", _consents, consent),
    )


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
        self.plan: list[tuple[str, Any, Callable[[Any], Any] | None]] = [
            (
                name,
                constants.get(name),
                compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect),
            )
            for name in names
        ]

    def args(self, values: dict[str, Any]) -> list[Any]:
        out = []
        for name, constant, process in self.plan:
            value = values.get(name, constant)
            out.append(process(value) if process is not None and value is not None else value)
        return out


@functools.cache
def _compiled(dialect: Dialect, statement: ClauseElement, column_keys: tuple[str, ...]) -> _Compiled:
    """Once per statement and set of columns given (the statements are cached, so they hash stably)."""
    return _Compiled(statement, dialect, column_keys)


# ---------------------------------------------------------------------------------------------
# SQLite (and any other database): statement by statement, through SQLAlchemy Core.
# ---------------------------------------------------------------------------------------------

_FIND_LEAD = (
    select(_leads.c.id, _leads.c.phone)
    .where(or_(_leads.c.email == bindparam("email"), _leads.c.phone == bindparam("phone")))
    .order_by(case((_leads.c.email == bindparam("email"), 0), else_=1), _leads.c.created_at)
    .limit(1)
    .with_for_update()
)


async def _write_core(conn: AsyncConnection, rows: SubmissionRows, idempotency: IdempotencyRow | None) -> uuid.UUID:
    lead = rows.lead
    found = (await conn.execute(_FIND_LEAD, {"email": lead["email"], "phone": lead["phone"]})).first()
    if found is None:
        lead_id: uuid.UUID = lead["id"]
        await conn.execute(_insert(_leads), lead)
    else:
        lead_id = found.id
        changes = {k: v for k, v in lead.items() if k not in _SET_ONCE and not (k in _KEPT_WHEN_NONE and v is None)}
        if lead["phone"] is None and found.phone:
            changes["search_text"] = (lead["search_text"] + found.phone.lstrip("+"))[:_SEARCH_TEXT_LENGTH]
        await conn.execute(update(_leads).where(_leads.c.id == lead_id).values(changes))
    await conn.execute(_insert(_screenings), {**rows.screening, "lead_id": lead_id})
    await conn.execute(_insert(_outbox), rows.outbox)
    await conn.execute(_insert(_consents), {**rows.consent, "lead_id": lead_id})
    if idempotency is not None:
        await conn.execute(_insert(_idempotency), idempotency(lead_id))
    return lead_id


@functools.cache
def _insert(table: Table) -> Any:
    return insert(table)


__all__ = [
    "Busy",
    "Disconnected",
    "IdempotencyRow",
    "SubmissionRows",
    "SubmissionSql",
    "WriteConflict",
    "submission_sql",
    "write_submission",
]
