"""Writes one submission's rows atomically: the busiest write of the service, kept lean.

A submission finds the person's lead (the same email first, else the same phone) and locks it,
updates it or inserts a new one, and inserts the screening, its outbox message and the consent.

* On PostgreSQL that is ONE statement (data-modifying CTEs), in the implicit transaction of that
  statement, run on the pooled connection's asyncpg driver directly. One round trip instead of
  seven (BEGIN, five statements, COMMIT): the round trips, and SQLAlchemy's execution layer
  around them, were most of a submission's CPU (bench/intake.py's profile). The statement is
  generated from the tables' columns and compiled once. With an idempotency record to keep, it
  and the record share an explicit transaction.
* On SQLite the same rows are written statement by statement through SQLAlchemy Core.

Either way: a new lead gets the row given; a lead found gets the newest details, except that a
phone or ZIP left out (None) keeps the one on file, and so does the search text's phone (the
search text given was made without a phone: the kept phone's digits are appended, see
`intake.leads.contact.search_text`). A caller sees the same two failures: `WriteConflict` (a
concurrent submission took a unique key first) and `Disconnected` (the connection died; the pool
was reset: try again).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import asyncpg
from sqlalchemy import String, Table, bindparam, case, insert, or_, select, text, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

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
        async with engine.begin() as conn:
            return await _write_core(conn, rows, idempotency)
    except IntegrityError as exc:
        raise WriteConflict from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise Disconnected from exc
        raise


# ---------------------------------------------------------------------------------------------
# PostgreSQL: one statement on the asyncpg driver.
# ---------------------------------------------------------------------------------------------


async def _write_asyncpg(engine: AsyncEngine, rows: SubmissionRows, idempotency: IdempotencyRow | None) -> uuid.UUID:
    dialect = engine.dialect
    parts = _parts(rows)
    submit = _submission(dialect, tuple(tuple(part) for part in parts))
    args = submit.args(parts)
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


class _SubmissionStatement:
    """The submission statement compiled once, and where each of its $n values comes from."""

    def __init__(self, dialect: Dialect, keys: tuple[tuple[str, ...], ...]):
        compiled = _Compiled(_submission_statement(dialect, *keys), dialect)
        self.sql = compiled.sql
        # Parameters are named by table prefix and column: `l_email` is the lead's "email".
        self._plan = [(_PREFIXES.index(name[:2]), name[2:], process) for name, _, process in compiled.plan]

    def args(self, parts: tuple[dict[str, Any], ...]) -> list[Any]:
        out = []
        for part, key, process in self._plan:
            value = parts[part][key]
            out.append(process(value) if process is not None and value is not None else value)
        return out


@functools.cache
def _submission(dialect: Dialect, keys: tuple[tuple[str, ...], ...]) -> _SubmissionStatement:
    return _SubmissionStatement(dialect, keys)


_PREFIXES = ("l_", "s_", "o_", "c_")


def _submission_statement(
    dialect: Dialect,
    lead: tuple[str, ...],
    screening: tuple[str, ...],
    outbox: tuple[str, ...],
    consent: tuple[str, ...],
) -> ClauseElement:
    """The whole submission as one PostgreSQL statement, for rows with these keys (built once per
    set of keys, by `_submission`)."""
    params: list[Any] = []

    def p(prefix: str, table: Table, column: str) -> str:
        """A typed parameter: CAST so that PostgreSQL knows its type wherever it stands."""
        name = prefix + column
        if all(b.key != name for b in params):
            params.append(bindparam(name, type_=table.c[column].type))
        return f"CAST(:{name} AS {table.c[column].type.compile(dialect=dialect)})"

    columns = {"screening": (*screening, "lead_id"), "consent": (*consent, "lead_id")}

    def values(prefix: str, table: Table, columns: Iterable[str]) -> str:
        return ", ".join("lead.id" if c == "lead_id" else p(prefix, table, c) for c in columns)

    kept_phone_digits = "coalesce(ltrim(found.phone, '+'), '')"
    assignments = []
    for c in lead:
        if c in _SET_ONCE:
            continue
        given = p("l_", _leads, c)
        if c in _KEPT_WHEN_NONE:
            assignments.append(f"{c} = coalesce({given}, leads.{c})")
        elif c == "search_text":
            phone = p("l_", _leads, "phone")
            assignments.append(
                f"search_text = CASE WHEN {phone} IS NULL "
                f"THEN left({given} || {kept_phone_digits}, {_SEARCH_TEXT_LENGTH}) ELSE {given} END"
            )
        else:
            assignments.append(f"{c} = {given}")
    email, phone = p("l_", _leads, "email"), p("l_", _leads, "phone")
    # Only the tables' own column names (p() looks each one up) are written into the text; every
    # value is a bound parameter.
    sql = f"""
WITH found AS (
    SELECT id, phone FROM leads
    WHERE email = {email} OR phone = {phone}
    ORDER BY CASE WHEN email = {email} THEN 0 ELSE 1 END, created_at
    LIMIT 1 FOR UPDATE
), updated AS (
    UPDATE leads SET {", ".join(assignments)}
    FROM found WHERE leads.id = found.id
    RETURNING leads.id
), inserted AS (
    INSERT INTO leads ({", ".join(lead)})
    SELECT {", ".join(p("l_", _leads, c) for c in lead)}
    WHERE NOT EXISTS (SELECT FROM found)
    RETURNING id
), lead AS (
    SELECT id FROM updated UNION ALL SELECT id FROM inserted
), screening AS (
    INSERT INTO screenings ({", ".join(columns["screening"])})
    SELECT {values("s_", _screenings, columns["screening"])} FROM lead
), outbox AS (
    INSERT INTO outbox_messages ({", ".join(outbox)}) VALUES ({values("o_", _outbox, outbox)})
), consent AS (
    INSERT INTO consents ({", ".join(columns["consent"])})
    SELECT {values("c_", _consents, columns["consent"])} FROM lead
)
SELECT id FROM lead"""  # noqa: S608
    return text(sql).bindparams(*params)


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


__all__ = ["Disconnected", "IdempotencyRow", "SubmissionRows", "WriteConflict", "write_submission"]
