"""Follow-up sequences with a real worker and beat: due rows claimed once, stopped by unsubscribe and status."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.app import create_app
from intake.db.base import utcnow
from intake.db.models import Delivery, FollowUp, Lead
from intake.db.sync import create_sync_engine, create_sync_sessionmaker
from intake.messaging.followups.rows import claim_due
from intake.messaging.followups.schedule import Window
from tests.conftest import emptied_after, make_settings
from tests.factories import EMERGENCY_ANSWERS, ROUTINE_ANSWERS, submission
from tests.quiet import assert_sent_once_when_quiet
from tests.services import RedisServer, SmtpSink, Worker, decoded, wait_for, worker_env
from tests.staff_fixtures import make_staff

pytestmark = pytest.mark.slow
ALWAYS = "00:00-24:00"


@pytest.fixture(scope="module")
def worker(
    pg_url: str, redis: RedisServer, smtp: SmtpSink, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    folder = tmp_path_factory.mktemp("fworker")
    env = {**worker_env(pg_url, redis, smtp, folder / "data"), "SENDING_WINDOW": ALWAYS, "FOLLOW_UP_CLAIM_SECONDS": "1"}
    process = Worker(env, folder / "worker.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def _clean(smtp: SmtpSink) -> None:
    smtp.reset()


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[AsyncEngine]:
    async for engine in emptied_after(pg_url):
        yield engine


@pytest.fixture
async def api(pg_url: str, redis: RedisServer, tmp_path: Path, pg: AsyncEngine) -> AsyncIterator[AsyncTestClient[Any]]:
    settings = make_settings(pg_url, tmp_path / "api", broker={"redis_url": redis.url})
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


async def follow_ups(engine: AsyncEngine, lead_id: str) -> dict[str, Any]:
    async with engine.connect() as connection:
        rows = (await connection.execute(select(FollowUp).where(FollowUp.lead_id == lead_id))).all()
    return {row.kind: row for row in rows}


async def make_due(engine: AsyncEngine, kind: str) -> None:
    """The movable clock: instead of waiting a day, the row's due time moves into the past."""
    async with engine.begin() as connection:
        await connection.execute(
            update(FollowUp).where(FollowUp.kind == kind).values(due_at=utcnow() - dt.timedelta(minutes=1))
        )


async def test_reminders_are_rows_claimed_once_by_beat(
    api: AsyncTestClient[Any], worker: Worker, smtp: SmtpSink, pg: AsyncEngine, pg_url: str, redis: RedisServer
) -> None:
    before = utcnow()
    body = (
        await api.post("/api/intake", json=submission(ROUTINE_ANSWERS, email="ana.r@example.com", phone=None))
    ).json()
    lead_id = body["lead_id"]
    wait_for(lambda: len(smtp.received) >= 1, 20, "the booking invitation")
    rows = await follow_ups(pg, lead_id)
    assert sorted(rows) == ["booking_reminder_1", "booking_reminder_2", "booking_reminder_3"]
    for kind, days in (("booking_reminder_1", 1), ("booking_reminder_2", 3), ("booking_reminder_3", 7)):
        offset = rows[kind].due_at - before
        assert dt.timedelta(days=days) - dt.timedelta(hours=2) < offset < dt.timedelta(days=days, hours=2), kind
        assert rows[kind].status == "pending"
    async with pg.connect() as connection:
        next_at = (await connection.execute(select(Lead.next_follow_up_at))).scalar_one()
    assert next_at == rows["booking_reminder_1"].due_at

    await make_due(pg, "booking_reminder_1")
    wait_for(lambda: len(smtp.received) >= 2, 20, "the first reminder")
    assert_sent_once_when_quiet(database_url=pg_url, emails=smtp, broker=redis, worker_logs=worker.logs)
    assert len(smtp.received) == 2
    reminder = smtp.received[1].message
    assert reminder["List-Unsubscribe"].startswith("<http") and "/u/" in reminder["List-Unsubscribe"]
    assert reminder["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Ana" not in str(reminder["Subject"])
    text = decoded(smtp.received[1])
    assert "token=" in text and "Boca Raton" in text  # the booking link and the postal address
    rows = await follow_ups(pg, lead_id)
    assert rows["booking_reminder_1"].status == "claimed"

    # The same person screening again starts no second set of reminders.
    await api.post("/api/intake", json=submission(ROUTINE_ANSWERS, email="ana.r@example.com", phone=None))
    wait_for(lambda: len(smtp.received) >= 3, 20, "the second invitation")
    assert_sent_once_when_quiet(database_url=pg_url, emails=smtp, broker=redis, worker_logs=worker.logs)
    assert len(smtp.received) == 3
    assert len(await follow_ups(pg, lead_id)) == 3


async def test_unsubscribe_takes_effect_at_once_and_twice_is_fine(
    api: AsyncTestClient[Any], worker: Worker, smtp: SmtpSink, pg: AsyncEngine, pg_url: str, redis: RedisServer
) -> None:
    lead_id = (await api.post("/api/intake", json=submission(ROUTINE_ANSWERS, phone=None))).json()["lead_id"]
    wait_for(lambda: len(smtp.received) >= 1, 20, "the invitation")
    link = smtp.received[0].message["List-Unsubscribe"].strip("<>")
    path = urlparse(link).path
    one_click = await api.post(
        path, content=b"List-Unsubscribe=One-Click", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert one_click.status_code == 200
    assert (await api.post(path, content=b"List-Unsubscribe=One-Click")).status_code == 200
    page = await api.get(path)
    assert page.status_code == 200 and "unsubscribed" in page.text.lower()
    assert (await api.get("/u/not-a-token")).status_code == 404
    rows = await follow_ups(pg, lead_id)
    assert {row.status for row in rows.values()} == {"cancelled"}
    await make_due(pg, "booking_reminder_2")
    assert_sent_once_when_quiet(database_url=pg_url, emails=smtp, broker=redis, worker_logs=worker.logs)
    assert len(smtp.received) == 1


async def test_closing_or_converting_stops_pending_follow_ups(
    api: AsyncTestClient[Any],
    worker: Worker,
    smtp: SmtpSink,
    pg: AsyncEngine,
    pg_url: str,
    redis: RedisServer,
    tmp_path: Path,
) -> None:
    settings = make_settings(pg_url, tmp_path / "api")
    staff = await make_staff(settings, api)
    lead_id = (await api.post("/api/intake", json=submission(EMERGENCY_ANSWERS, phone=None))).json()["lead_id"]
    wait_for(lambda: len(smtp.received) >= 2, 20, "seek-care-now email and staff alert")
    rows = await follow_ups(pg, lead_id)
    assert list(rows) == ["seek_care_checkin"]
    checkin_offset = rows["seek_care_checkin"].due_at - rows["seek_care_checkin"].created_at
    assert abs(checkin_offset - dt.timedelta(hours=48)) < dt.timedelta(minutes=5)

    response = await api.patch(
        f"/api/leads/{lead_id}", json={"status": "closed", "closed_reason": "no_response"}, headers=staff["front_desk"]
    )
    assert response.status_code == 200
    assert response.json()["next_follow_up_at"] is None
    assert (await follow_ups(pg, lead_id))["seek_care_checkin"].status == "cancelled"
    await make_due(pg, "seek_care_checkin")
    assert_sent_once_when_quiet(database_url=pg_url, emails=smtp, broker=redis, worker_logs=worker.logs)
    assert len(smtp.received) == 2


async def test_a_follow_up_queued_before_the_person_unsubscribed_is_not_sent(
    api: AsyncTestClient[Any], worker: Worker, smtp: SmtpSink, pg: AsyncEngine, pg_url: str, redis: RedisServer
) -> None:
    """The stop conditions are checked again when a delivery is about to be sent."""
    await api.post("/api/intake", json=submission(ROUTINE_ANSWERS, phone=None))
    wait_for(lambda: len(smtp.received) >= 1, 20, "the invitation")
    async with pg.begin() as connection:
        await connection.execute(update(Lead).values(unsubscribed_at=utcnow()))  # as if it raced the claim
    await make_due(pg, "booking_reminder_1")
    assert_sent_once_when_quiet(database_url=pg_url, emails=smtp, broker=redis, worker_logs=worker.logs)
    assert len(smtp.received) == 1
    async with pg.connect() as connection:
        statuses = dict((await connection.execute(select(Delivery.kind, Delivery.status))).tuples().all())
    assert statuses["booking_reminder_1"] == "cancelled"


def _seed_due(database_url: str, count: int) -> None:
    """Due follow-up rows for one lead each, straight in the database (sync, as the worker sees it)."""
    import asyncio

    from litestar.testing import AsyncTestClient as Client

    async def seed() -> None:
        settings = make_settings(database_url, Path("/tmp/intake-seed"))
        async with Client(app=create_app(settings)) as client:
            for _ in range(count):
                await client.post("/api/intake", json=submission(ROUTINE_ANSWERS, phone=None))

    asyncio.run(seed())


def test_claiming_is_exactly_once_under_concurrency_and_waits_for_the_window(database_url: str) -> None:
    from intake.settings import DatabaseSettings

    engine = create_sync_engine(DatabaseSettings(url=database_url, pool_size=4, echo=False))
    maker = create_sync_sessionmaker(engine)
    night = Window.parse("America/New_York", "08:00-20:00")
    # 22:00 clinic time on a fixed day: the test must not depend on the hour it runs at.
    local_night = dt.datetime(2026, 11, 20, 22, 0, tzinfo=night.zone)
    now = local_night.astimezone(dt.UTC)
    _seed_due(database_url, 6)  # leads from real submissions; their reminder rows are replaced below
    with maker() as session, session.begin():
        lead_ids = list(session.execute(select(Lead.id)).scalars())
        session.execute(FollowUp.__table__.delete())
        for index, lead_id in enumerate(lead_ids):
            session.add(
                FollowUp(
                    lead_id=lead_id,
                    sequence="book_consultation",
                    kind="booking_reminder_1",
                    due_at=now - dt.timedelta(minutes=index + 1),
                    status="pending",
                )
            )
    with maker() as session:
        assert claim_due(session, night, local_night.astimezone(dt.UTC), 100) == []
    with maker() as session:
        due_at = list(session.execute(select(FollowUp.due_at).where(FollowUp.status == "pending")).scalars())
    assert all(d.astimezone(night.zone).hour == 8 for d in due_at)  # moved to the next morning

    always = Window.parse("America/New_York", ALWAYS)
    results: list[int] = []
    later = local_night.astimezone(dt.UTC) + dt.timedelta(days=2)

    def claim() -> None:
        with maker() as session:
            results.append(len(claim_due(session, always, later, 2)))

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with maker() as session:
        claimed = session.execute(select(FollowUp.status)).scalars().all()
        deliveries = (
            session.execute(select(Delivery.dedupe_key).where(Delivery.kind == "booking_reminder_1")).scalars().all()
        )
    assert sum(results) == len(lead_ids) and set(claimed) == {"claimed"}
    assert len(deliveries) == len(set(deliveries)) == len(lead_ids)
    engine.dispose()
