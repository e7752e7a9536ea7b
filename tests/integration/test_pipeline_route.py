"""GET /pipeline on PostgreSQL and SQLite: 503 naming the reason while work is not moving, 200 once it is; /ready
stays about the API. The processes themselves are in test_supervision.py; here the rows are written by hand."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.db.base import utcnow
from intake.db.models import Delivery, OutboxMessage, Screening, WorkerHeartbeat
from intake.messaging import kinds
from tests.factories import EMERGENCY_ANSWERS, submission

Client = AsyncTestClient[Any]


async def beat(db: AsyncEngine, role: str, seconds_ago: float = 0.0) -> None:
    at = utcnow() - dt.timedelta(seconds=seconds_ago)
    async with db.begin() as connection:
        await connection.execute(
            insert(WorkerHeartbeat).values(
                name=f"{role}:test:{uuid.uuid4().hex[:6]}", role=role, host="test", pid=1, started_at=at, beat_at=at
            )
        )


@pytest.fixture
async def no_heartbeats(db: AsyncEngine) -> None:
    """Only the heartbeats a test writes (a worker of another test may have left its row in PostgreSQL)."""
    async with db.begin() as connection:
        await connection.execute(delete(WorkerHeartbeat))


async def codes(client: Client, expected_status: int) -> list[str]:
    response = await client.get("/pipeline")
    assert response.status_code == expected_status, response.text
    body = response.json()
    assert body["status"] == ("ok" if expected_status == 200 else "stalled")
    return [reason["code"] for reason in body["reasons"]]


@pytest.mark.usefixtures("no_heartbeats")
async def test_no_heartbeat_is_503_and_fresh_ones_are_200(client: Client, db: AsyncEngine) -> None:
    assert await codes(client, 503) == ["no_worker_heartbeat", "no_scheduler_heartbeat"]
    assert (await client.get("/ready")).status_code == 200  # the API itself is fine: keep sending submissions
    await beat(db, "worker", seconds_ago=31)  # older than PIPELINE_STALE_HEARTBEAT_SECONDS (30)
    await beat(db, "scheduler")
    assert await codes(client, 503) == ["no_worker_heartbeat"]
    body = (await client.get("/pipeline")).json()
    assert body["worker"]["alive"] == 0 and 30 < body["worker"]["age_seconds"] < 60
    await beat(db, "worker")
    assert await codes(client, 200) == []
    body = (await client.get("/pipeline")).json()
    assert body["worker"]["alive"] == 1 and body["worker"]["age_seconds"] < 5
    assert body["outbox"] == {"count": 0, "oldest_age_seconds": None}
    assert body["limits"] == {"stale_heartbeat_seconds": 30.0, "max_wait_seconds": 60.0}


@pytest.mark.usefixtures("no_heartbeats")
async def test_work_waiting_past_the_limit_is_503_naming_it(client: Client, db: AsyncEngine) -> None:
    await beat(db, "worker")
    await beat(db, "scheduler")
    payload = submission(EMERGENCY_ANSWERS, email="waiting.patient@example.com", first_name="Wilhelmina")
    created = await client.post("/api/intake", json=payload)
    assert created.status_code == 201
    assert await codes(client, 200) == []  # waiting, but not for long yet

    long_ago = utcnow() - dt.timedelta(seconds=61)
    async with db.begin() as connection:
        await connection.execute(update(OutboxMessage).values(created_at=long_ago))
    response = await client.get("/pipeline")
    assert response.status_code == 503
    assert [r["code"] for r in response.json()["reasons"]] == ["outbox_waiting"]
    assert response.json()["outbox"]["count"] == 1 and response.json()["outbox"]["oldest_age_seconds"] >= 61
    for private in ("waiting.patient", "Wilhelmina", "Delgado", created.json()["lead_id"]):
        assert private not in response.text
    # Submissions keep being taken meanwhile.
    assert (await client.post("/api/intake", json=submission(EMERGENCY_ANSWERS))).status_code == 201
    assert (await client.get("/ready")).status_code == 200

    # Routed, but the staff alert still queued after a minute: a stall of its own.
    async with db.begin() as connection:
        await connection.execute(update(OutboxMessage).values(done_at=utcnow()))
        screening_id = (await connection.execute(select(OutboxMessage.ref_id).limit(1))).scalar_one()
        lead_id = (await connection.execute(select(Screening.lead_id).where(Screening.id == screening_id))).scalar_one()
        await connection.execute(
            insert(Delivery).values(
                id=uuid.uuid4(),
                created_at=long_ago,
                updated_at=long_ago,
                lead_id=lead_id,
                screening_id=screening_id,
                kind=kinds.KIND_STAFF_ALERT,
                channel="email",
                dedupe_key=f"{lead_id}:{screening_id}:staff_alert",
                queue=kinds.ALERTS_QUEUE,
                status="queued",
                attempts=0,
            )
        )
    assert await codes(client, 503) == ["alerts_waiting"]
    async with db.begin() as connection:
        await connection.execute(update(Delivery).values(status="sent", sent_at=utcnow()))
    assert await codes(client, 200) == []


async def test_an_unreachable_database_is_503_for_the_pipeline_too(tmp_path: Any) -> None:
    from intake.app import create_app
    from tests.conftest import make_settings

    settings = make_settings("postgresql+asyncpg://postgres@127.0.0.1:1/none", tmp_path)
    async with AsyncTestClient(app=create_app(settings)) as client:
        response = await client.get("/pipeline")
    assert response.status_code == 503
    assert [r["code"] for r in response.json()["reasons"]] == ["database_unreachable"]
