"""Follow-ups sent in batches: each delivery still claimed, checked, sent and recorded on its own.

Real PostgreSQL and SQLite, a real SMTP server (aiosmtpd), and for the crash a real worker on a real Redis.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import Engine, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.app import create_app
from intake.db.base import new_id, utcnow
from intake.db.models import Booking, Delivery, FollowUp, Lead, OutboxMessage, StaffMember
from intake.db.sync import create_sync_engine, create_sync_sessionmaker
from intake.leads.follow_through import route_screening
from intake.messaging import kinds
from intake.messaging.followups.rows import claim_due
from intake.messaging.followups.schedule import Window
from intake.messaging.mail.transport import SmtpTransport
from intake.messaging.publishing.celery_app import create_celery
from intake.messaging.sending import DeliverySender
from intake.settings import Settings
from tests.conftest import emptied_after, make_settings
from tests.factories import ROUTINE_ANSWERS, submission
from tests.quiet import assert_sent_once_when_quiet
from tests.services import RedisServer, SmtpSink, Worker, wait_for, worker_env
from workers.context import delivery_sender
from workers.tasks.followups import claim_and_publish

pytestmark = pytest.mark.slow
ALWAYS = "00:00-24:00"
REMINDER = "booking_reminder_1"


@pytest.fixture(autouse=True)
def _clean(smtp: SmtpSink) -> None:
    smtp.reset()


def sender_settings(database_url: str, smtp: SmtpSink, folder: Path) -> Settings:
    return make_settings(
        database_url,
        folder,
        smtp={"host": "127.0.0.1", "port": smtp.port, "starttls": False},
        followups={"sending_window": ALWAYS},
    )


@pytest.fixture
def sync_engine(database_url: str, tmp_path: Path, db: AsyncEngine) -> Iterator[Engine]:
    engine = create_sync_engine(make_settings(database_url, tmp_path / "sync").db)
    yield engine
    engine.dispose()


class Senders:
    """DeliverySenders as worker processes build them: each its own engine and SMTP connection."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._made: list[tuple[Engine, SmtpTransport]] = []

    def make(self, transport: Any = None) -> DeliverySender:
        engine = create_sync_engine(self.settings.db)
        smtp = SmtpTransport(self.settings)
        self._made.append((engine, smtp))
        maker = create_sync_sessionmaker(engine, autocommit=True)
        return delivery_sender(self.settings, maker, transport or smtp)

    def close(self) -> None:
        for engine, smtp in self._made:
            smtp.close()
            engine.dispose()


@pytest.fixture
def senders(database_url: str, smtp: SmtpSink, tmp_path: Path) -> Iterator[Senders]:
    made = Senders(sender_settings(database_url, smtp, tmp_path / "worker"))
    yield made
    made.close()


async def seed_follow_ups(database_url: str, folder: Path, count: int) -> None:
    """Leads from real submissions (consent given), routed here as a worker routes them, so each has its
    pending booking reminders. The API publishes to a filesystem broker nobody reads; the invitations are
    cancelled, so that only follow-ups are left to send."""
    settings = make_settings(database_url, folder)
    async with AsyncTestClient(app=create_app(settings)) as client:
        for index in range(count):
            payload = submission(ROUTINE_ANSWERS, email=f"batch.{index}@example.com", phone=None)
            assert (await client.post("/api/intake", json=payload)).status_code == 201
    engine = create_sync_engine(settings.db)
    maker = create_sync_sessionmaker(engine)
    with engine.connect() as connection:
        outbox_ids = connection.execute(select(OutboxMessage.id)).scalars().all()
    for outbox_id in outbox_ids:
        with maker() as session:
            route_screening(session, outbox_id, settings)
    with engine.begin() as connection:
        connection.execute(
            update(Delivery).where(Delivery.kind == kinds.KIND_BOOKING_INVITATION).values(status="cancelled")
        )
    engine.dispose()


def make_due(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(FollowUp).where(FollowUp.kind == REMINDER).values(due_at=utcnow() - dt.timedelta(minutes=1))
        )


def claim_reminders(engine: Engine) -> list[uuid.UUID]:
    """The first reminders, due now, claimed as beat claims them; in send order (by lead)."""
    make_due(engine)
    with create_sync_sessionmaker(engine)() as session:
        claimed = claim_due(session, Window.parse("America/New_York", ALWAYS), utcnow(), 500)
    assert claimed
    with engine.connect() as connection:
        rows = connection.execute(
            select(Delivery.id, Lead.email)
            .join(Lead, Lead.id == Delivery.lead_id)
            .where(Delivery.kind == REMINDER)
            .order_by(Lead.email)
        ).all()
    return [row.id for row in rows]


def statuses(engine: Engine, ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[str, int, str | None]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(Delivery.id, Delivery.status, Delivery.attempts, Delivery.last_error).where(Delivery.id.in_(ids))
        ).all()
    return {row.id: (row.status, row.attempts, row.last_error) for row in rows}


def received_ids(smtp: SmtpSink) -> Counter[str]:
    with smtp.lock:
        return Counter(str(r.message["X-Intake-Delivery"]) for r in smtp.received)


async def test_batches_racing_for_the_same_deliveries_send_each_once(
    database_url: str, tmp_path: Path, sync_engine: Engine, senders: Senders, smtp: SmtpSink
) -> None:
    await seed_follow_ups(database_url, tmp_path / "api", 8)
    ids = claim_reminders(sync_engine)
    assert len(ids) == 8
    workers = [senders.make() for _ in range(4)]
    outcomes: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(workers))

    def run(sender: DeliverySender, seed: int) -> None:
        order = ids[:]
        random.Random(seed).shuffle(order)
        try:
            start.wait()
            outcomes.extend(outcome.status for outcome in sender.send_many(order))
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(sender, seed)) for seed, sender in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Counter(outcomes) == {"sent": 8, "skipped": 24}
    assert received_ids(smtp) == Counter({str(i): 1 for i in ids})
    assert set(statuses(sync_engine, ids).values()) == {("sent", 1, None)}


class StopsAfterFirst:
    """The SMTP transport, with the leads' stops arriving right after the batch's first email went out."""

    def __init__(self, inner: SmtpTransport, stop: Any):
        self._inner = inner
        self._stop = stop
        self.sent = 0

    def send(self, message: Any) -> None:
        self._inner.send(message)
        self.sent += 1
        if self.sent == 1:
            self._stop()

    def close(self) -> None:
        self._inner.close()


async def test_a_stop_while_a_batch_is_sending_holds_back_the_rest(
    database_url: str, tmp_path: Path, sync_engine: Engine, senders: Senders, smtp: SmtpSink
) -> None:
    """Booked, unsubscribed and closed after the batch was claimed and had started: not sent."""
    await seed_follow_ups(database_url, tmp_path / "api", 4)
    ids = claim_reminders(sync_engine)
    with sync_engine.connect() as connection:
        lead_of = dict(connection.execute(select(Delivery.id, Delivery.lead_id).where(Delivery.id.in_(ids))).all())
    first, booked, unsubscribed, closed = ids

    def stop() -> None:
        now = utcnow()
        with sync_engine.begin() as connection:
            staff_id = new_id()
            connection.execute(
                StaffMember.__table__.insert().values(
                    id=staff_id,
                    created_at=now,
                    updated_at=now,
                    email="pt@clinic.test",
                    name="PT",
                    role="clinician",
                    password_hash="x",
                    disabled=False,
                    failed_logins=0,
                )
            )
            connection.execute(
                Booking.__table__.insert().values(
                    id=new_id(),
                    created_at=now,
                    lead_id=lead_of[booked],
                    staff_id=staff_id,
                    location="boca_raton",
                    starts_at=now + dt.timedelta(days=3),
                    ends_at=now + dt.timedelta(days=3, minutes=30),
                    status="booked",
                )
            )
            connection.execute(update(Lead).where(Lead.id == lead_of[unsubscribed]).values(unsubscribed_at=now))
            connection.execute(
                update(Lead).where(Lead.id == lead_of[closed]).values(status="closed", closed_reason="no_response")
            )

    smtp_transport = SmtpTransport(senders.settings)
    sender = senders.make(StopsAfterFirst(smtp_transport, stop))
    try:
        outcomes = [outcome.status for outcome in sender.send_many(ids)]
    finally:
        smtp_transport.close()
    assert outcomes == ["sent", "skipped", "skipped", "skipped"]
    assert received_ids(smtp) == Counter({str(first): 1})
    rows = statuses(sync_engine, ids)
    assert rows[first] == ("sent", 1, None)
    assert rows[booked] == ("cancelled", 1, "stopped: booked")
    assert rows[unsubscribed] == ("cancelled", 1, "stopped: unsubscribed")
    assert rows[closed] == ("cancelled", 1, "stopped: closed")


async def test_a_claim_run_stops_while_enough_follow_ups_wait_to_be_sent(
    database_url: str, tmp_path: Path, sync_engine: Engine, smtp: SmtpSink
) -> None:
    await seed_follow_ups(database_url, tmp_path / "api", 6)
    make_due(sync_engine)
    settings = make_settings(database_url, tmp_path / "w", followups={"sending_window": ALWAYS, "claim_batch": 2})
    published: list[list[uuid.UUID]] = []
    maker = create_sync_sessionmaker(sync_engine)

    def run() -> int:
        with maker() as session:
            return claim_and_publish(session, settings, published.append, backlog=3)

    assert run() == 4  # 2, then 2 more (2 waiting < 3), then 4 waiting: no third batch
    assert [len(batch) for batch in published] == [2, 2]
    assert run() == 0  # still 4 waiting
    with sync_engine.begin() as connection:
        connection.execute(update(Delivery).where(Delivery.id.in_(published[0])).values(status="sent"))
    assert run() == 2  # 2 waiting: one more batch, and nothing else is due
    with sync_engine.connect() as connection:
        pending = connection.execute(
            select(FollowUp.id).where(FollowUp.kind == REMINDER, FollowUp.status == "pending")
        ).all()
    assert pending == []
    assert len({i for batch in published for i in batch}) == 6


def test_an_idle_connection_the_server_dropped_is_replaced(pg_url: str, tmp_path: Path) -> None:
    import intake.db.sync

    engine = create_sync_engine(make_settings(pg_url, tmp_path).db)
    try:
        with engine.connect() as connection:
            first = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with engine.connect() as connection:
            assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() == first  # pooled, no ping
        admin = create_sync_engine(make_settings(pg_url, tmp_path).db)  # a pool of its own
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        admin.dispose()
        # As if it had been idle longer than PING_IDLE_AFTER: the ping finds it gone; the pool replaces it.
        intake.db.sync.PING_IDLE_AFTER, kept = -1.0, intake.db.sync.PING_IDLE_AFTER
        try:
            with engine.connect() as connection:
                assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() != first
        finally:
            intake.db.sync.PING_IDLE_AFTER = kept
    finally:
        engine.dispose()


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[AsyncEngine]:
    async for engine in emptied_after(pg_url):
        yield engine


async def test_worker_killed_in_the_middle_of_a_batch_sends_each_once(
    pg_url: str, smtp: SmtpSink, tmp_path: Path, pg: AsyncEngine
) -> None:
    await seed_follow_ups(pg_url, tmp_path / "api", 5)
    redis = RedisServer()
    redis.start()
    env = {**worker_env(pg_url, redis, smtp, tmp_path / "wdata"), "SENDING_WINDOW": ALWAYS}
    worker = Worker(env, tmp_path / "worker.log")
    worker.start()
    engine = create_sync_engine(make_settings(pg_url, tmp_path).db)
    try:
        hold = threading.Event()
        smtp.behaviour.hold_rcpt = hold
        ids = claim_reminders(engine)
        celery = create_celery(make_settings(pg_url, tmp_path / "pub", broker={"redis_url": redis.url}))
        celery.send_task(kinds.TASK_SEND_DELIVERIES, args=[[str(i) for i in ids]], queue=kinds.DEFAULT_QUEUE)
        celery.close()
        wait_for(smtp.behaviour.rcpt_seen.is_set, 20, "the worker to be in the middle of the batch")
        worker.kill()
        hold.set()
        assert received_ids(smtp) == Counter()
        before = Counter(status for status, _, _ in statuses(engine, ids).values())
        assert before["sending"] == 1 and before["queued"] == 4, before

        worker = Worker(env, tmp_path / "worker2.log")
        worker.start()
        wait_for(lambda: len(received_ids(smtp)) >= len(ids), 60, "the batch after the restart")
        wait_for(lambda: {s for s, _, _ in statuses(engine, ids).values()} == {"sent"}, 20, "every row sent")
        # Until nothing is left that could send (no row unfinished, Redis empty) and a sweep has passed.
        assert_sent_once_when_quiet(database_url=pg_url, emails=smtp, broker=redis, worker_logs=worker.logs)
        assert received_ids(smtp) == Counter({str(i): 1 for i in ids})
    finally:
        worker.stop()
        redis.stop()
        engine.dispose()
