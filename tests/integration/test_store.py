"""The submission statement on PostgreSQL: built once, and runnable on bare asyncpg (as bench/intake.py's ceiling runs it)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from intake.leads import store
from intake.leads.store import SubmissionRows, submission_sql
from tests.factories import submission

Client = AsyncTestClient[Any]


def _rows(email: str, phone: str | None) -> SubmissionRows:
    now = dt.datetime.now(dt.UTC)
    screening_id = uuid.uuid4()
    return SubmissionRows(
        lead={
            "id": uuid.uuid4(),
            "created_at": now,
            "status": "new",
            "first_name": "Rosie",
            "last_name": "Delgado",
            "email": email,
            "phone": phone,
            "preferred_contact": "email",
            "location": "virtual",
            "zip": None,
            "language": "en",
            "search_text": f"rosie delgado {email} " + (phone or "").lstrip("+"),
            "tier": "routine",
            "tier_rank": 3,
            "route": "book_consultation",
            "score": 4,
            "urgency": 10,
            "last_screened_at": now,
            "updated_at": now,
        },
        screening={
            "id": screening_id,
            "created_at": now,
            "language": "en",
            "answers": {"pain_now": 4},
            "rule_set_version": "test",
            "tier": "routine",
            "route": "book_consultation",
            "score": 4,
            "reasons": [],
            "rescored_from_id": None,
        },
        outbox={
            "id": uuid.uuid4(),
            "created_at": now,
            "topic": "route_screening",
            "ref_id": screening_id,
            "queue": "celery",
            "publish_count": 0,
        },
        consent={
            "id": uuid.uuid4(),
            "created_at": now,
            "screening_id": screening_id,
            "privacy_notice_version": "test",
            "privacy_accepted_at": now,
            "email_followup": True,
            "sms": False,
        },
    )


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def test_the_statement_runs_on_bare_asyncpg_and_finds_the_lead_again(pg_url: str) -> None:
    first, again = _rows("bench@example.com", "+15615550100"), _rows("bench@example.com", None)
    statement = submission_sql(first)
    assert submission_sql(again) is statement  # the same keys: compiled once
    assert sorted(statement.params) == sorted(
        (row, key)
        for row, part in zip(("lead", "screening", "outbox", "consent"), store._parts(first), strict=True)
        for key in part
    )
    connection = await asyncpg.connect(_asyncpg_dsn(pg_url))
    try:
        lead_id = await connection.fetchval(statement.sql, *statement.args(first))
        assert lead_id == first.lead["id"]
        assert await connection.fetchval(statement.sql, *statement.args(again)) == lead_id
        lead = await connection.fetchrow("SELECT phone, search_text FROM leads WHERE id = $1", lead_id)
        assert (lead["phone"], lead["search_text"]) == ("+15615550100", "rosie delgado bench@example.com 15615550100")
        assert await connection.fetchval("SELECT count(*) FROM screenings WHERE lead_id = $1", lead_id) == 2
        assert await connection.fetchval("SELECT count(*) FROM consents WHERE lead_id = $1", lead_id) == 2
        refs = [first.outbox["ref_id"], again.outbox["ref_id"]]
        assert await connection.fetchval("SELECT count(*) FROM outbox_messages WHERE ref_id = ANY($1)", refs) == 2
    finally:
        await connection.close()


async def test_submissions_do_not_build_the_statement_again(
    client: Client, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL: SQLite writes statement by statement")
    built: list[tuple[tuple[str, ...], ...]] = []
    build = store._submission_statement

    def counted(*keys: tuple[str, ...]) -> Any:
        built.append(keys)
        return build(*keys)

    monkeypatch.setattr(store, "_submission_statement", counted)
    for n in range(3):
        response = await client.post("/api/intake", json=submission(email=f"once.{n}@example.com"))
        assert response.status_code == 201, response.text
    assert len(built) == 1  # the client's engine is new: built at its first submission, then cached
