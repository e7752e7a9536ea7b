"""Routing by a real Celery worker on a real Redis, sending to a real SMTP server: nothing lost, nothing twice."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.app import create_app
from intake.db.models import Delivery, OutboxMessage
from intake.messaging import kinds
from intake.messaging.publishing.celery_app import create_celery
from intake.settings import Settings
from tests.conftest import emptied_after, make_settings
from tests.factories import EMERGENCY_ANSWERS, ROUTINE_ANSWERS, submission
from tests.quiet import assert_sent_once_when_quiet
from tests.services import (
    STAFF,
    WEBHOOK_SECRET,
    RedisServer,
    SmtpSink,
    WebhookSink,
    Worker,
    decoded,
    wait_for,
    worker_env,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def webhook() -> Iterator[WebhookSink]:
    sink = WebhookSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def worker(
    pg_url: str,
    redis: RedisServer,
    smtp: SmtpSink,
    webhook: WebhookSink,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Worker]:
    folder = tmp_path_factory.mktemp("worker")
    process = Worker(worker_env(pg_url, redis, smtp, folder / "data", webhook.url), folder / "worker.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def _clean_sinks(smtp: SmtpSink, webhook: WebhookSink) -> None:
    smtp.reset()
    webhook.requests.clear()


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[AsyncEngine]:
    async for engine in emptied_after(pg_url):
        yield engine


def api_settings(pg_url: str, redis: RedisServer, tmp_path: Path) -> Settings:
    return make_settings(pg_url, tmp_path / "api", broker={"redis_url": redis.url})


@pytest.fixture
async def api(pg_url: str, redis: RedisServer, tmp_path: Path, pg: AsyncEngine) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(api_settings(pg_url, redis, tmp_path))) as client:
        yield client


async def deliveries(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as connection:
        return list((await connection.execute(select(Delivery).order_by(Delivery.kind))).all())


async def test_seek_care_now_reaches_patient_and_staff(
    api: AsyncTestClient[Any],
    worker: Worker,
    smtp: SmtpSink,
    webhook: WebhookSink,
    pg: AsyncEngine,
    pg_url: str,
    redis: RedisServer,
) -> None:
    payload = submission(EMERGENCY_ANSWERS, language="es", email="lucia.ferrer@example.com", first_name="Lucía")
    body = (await api.post("/api/intake", json=payload)).json()
    lead_id = body["lead_id"]
    wait_for(
        lambda: len(smtp.received) >= 2 and len(webhook.requests) >= 1,
        20,
        "patient email, staff alert, webhook",
    )
    assert_sent_once_when_quiet(
        database_url=pg_url, emails=smtp, broker=redis, worker_logs=worker.logs, webhook=webhook
    )

    (patient,) = smtp.to("lucia.ferrer@example.com")
    subject = str(patient.message["Subject"])
    assert "Lucía" not in subject and "lucia" not in subject.lower() and "Ferrer" not in subject
    text = patient.message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert body["advice"]["title"] in text  # the advice, in Spanish
    assert "(561) 555-0100" in text  # the clinic's phone
    assert not any(r["text"] in text for r in body["reasons"])  # no symptoms beyond the advice
    assert patient.message.get_body(preferencelist=("html",)) is not None

    (staff,) = [r for r in smtp.received if set(STAFF) <= set(r.rcpt_tos)]
    staff_text = decoded(staff)
    assert lead_id in staff_text and "emergency" in staff_text and f"/api/leads/{lead_id}" in staff_text
    for private in ("Lucía", "Ferrer", "lucia.ferrer", "5550123", "vejiga", "bladder"):
        assert private not in staff_text
    assert len(smtp.received) == 2

    (request,) = webhook.requests
    headers, raw = request
    expected = hmac.new(WEBHOOK_SECRET.encode(), headers["x-intake-timestamp"].encode() + b"." + raw, hashlib.sha256)
    assert headers["x-intake-signature"] == f"sha256={expected.hexdigest()}"
    alert = json.loads(raw)
    assert alert["lead_id"] == lead_id and alert["tier"] == "emergency" and alert["minutes_since"] == 0
    assert set(alert) == {"lead_id", "tier", "minutes_since", "lead_url"}

    rows = await deliveries(pg)
    assert sorted(r.kind for r in rows) == [
        kinds.KIND_SEEK_CARE_NOW,
        kinds.KIND_STAFF_ALERT,
        kinds.KIND_STAFF_ALERT_WEBHOOK,
    ]
    assert {r.status for r in rows} == {"sent"}
    async with pg.connect() as connection:
        (outbox,) = (await connection.execute(select(OutboxMessage))).all()
    assert outbox.done_at is not None
    logs = worker.logs()
    for private in ("Lucía", "Ferrer", "lucia.ferrer"):
        assert private not in logs


async def test_book_consultation_gets_an_invitation(
    api: AsyncTestClient[Any], worker: Worker, smtp: SmtpSink, pg: AsyncEngine, pg_url: str, redis: RedisServer
) -> None:
    await api.post("/api/intake", json=submission(ROUTINE_ANSWERS, email="sam.o@example.com", first_name="Sam"))
    wait_for(lambda: len(smtp.received) >= 1, 20, "the booking invitation")
    assert_sent_once_when_quiet(database_url=pg_url, emails=smtp, broker=redis, worker_logs=worker.logs)
    (invitation,) = smtp.received
    assert invitation.rcpt_tos == ["sam.o@example.com"]
    assert "Sam" not in str(invitation.message["Subject"])
    assert "/book" in decoded(invitation)
    (row,) = await deliveries(pg)
    assert (row.kind, row.status, row.attempts) == (kinds.KIND_BOOKING_INVITATION, "sent", 1)


async def test_smtp_451_twice_then_accepted_sends_one_email(
    api: AsyncTestClient[Any], worker: Worker, smtp: SmtpSink, pg: AsyncEngine, pg_url: str, redis: RedisServer
) -> None:
    smtp.behaviour.data_replies = ["451 4.3.0 Try again later", "451 4.3.0 Try again later"]
    await api.post("/api/intake", json=submission(ROUTINE_ANSWERS))
    wait_for(lambda: len(smtp.received) >= 1, 30, "the email after two 451s")
    assert_sent_once_when_quiet(database_url=pg_url, emails=smtp, broker=redis, worker_logs=worker.logs)
    assert len(smtp.received) == 1
    assert smtp.data_commands == 3
    (row,) = await deliveries(pg)
    assert (row.status, row.attempts) == ("sent", 3)


async def test_smtp_550_marks_the_delivery_dead_without_retrying(
    api: AsyncTestClient[Any], worker: Worker, smtp: SmtpSink, pg: AsyncEngine, pg_url: str, redis: RedisServer
) -> None:
    smtp.behaviour.data_replies = ["550 5.1.1 Mailbox unavailable"]
    await api.post("/api/intake", json=submission(ROUTINE_ANSWERS))
    wait_for(lambda: smtp.data_commands >= 1, 20, "the refused attempt")
    assert_sent_once_when_quiet(database_url=pg_url, emails=smtp, broker=redis, worker_logs=worker.logs)
    assert smtp.data_commands == 1
    assert smtp.received == []
    (row,) = await deliveries(pg)
    assert (row.status, row.attempts) == ("dead", 1)
    assert row.last_error.startswith("smtp 550")
    assert "delivery.dead" in worker.logs()


async def test_one_outbox_row_published_three_times_sends_once(
    api: AsyncTestClient[Any],
    worker: Worker,
    smtp: SmtpSink,
    pg: AsyncEngine,
    pg_url: str,
    redis: RedisServer,
    tmp_path: Path,
) -> None:
    await api.post("/api/intake", json=submission(ROUTINE_ANSWERS))
    async with pg.connect() as connection:
        outbox_id = (await connection.execute(select(OutboxMessage.id))).scalar_one()
    celery = create_celery(api_settings(pg_url, redis, tmp_path))
    for _ in range(2):
        celery.send_task(kinds.TASK_ROUTE_SCREENING, args=[str(outbox_id)], queue=kinds.DEFAULT_QUEUE)
    wait_for(lambda: len(smtp.received) >= 1, 20, "the invitation")
    assert_sent_once_when_quiet(database_url=pg_url, emails=smtp, broker=redis, worker_logs=worker.logs)
    assert len(smtp.received) == 1
    assert len(await deliveries(pg)) == 1


async def test_redis_down_during_submission_routes_once_it_is_back(
    pg_url: str, smtp: SmtpSink, pg: AsyncEngine, tmp_path: Path
) -> None:
    redis = RedisServer()
    redis.start()
    worker = Worker(worker_env(pg_url, redis, smtp, tmp_path / "wdata"), tmp_path / "worker.log")
    worker.start()
    try:
        redis.stop()
        async with AsyncTestClient(app=create_app(api_settings(pg_url, redis, tmp_path))) as api:
            started = time.monotonic()
            response = await api.post("/api/intake", json=submission(EMERGENCY_ANSWERS, email="kim@example.com"))
            elapsed = time.monotonic() - started
        assert response.status_code == 201
        assert response.json()["route"] == "seek_care_now"
        assert elapsed < 5, f"the patient waited {elapsed:.1f}s on a broker that is down"
        async with pg.connect() as connection:
            assert (await connection.execute(select(OutboxMessage.done_at))).scalar_one() is None
        redis.start()
        wait_for(lambda: len(smtp.to("kim@example.com")) >= 1, 60, "the seek-care-now email after Redis came back")
        assert_sent_once_when_quiet(database_url=pg_url, emails=smtp, broker=redis, worker_logs=worker.logs)
        assert len(smtp.to("kim@example.com")) == 1
        assert len([r for r in smtp.received if set(STAFF) <= set(r.rcpt_tos)]) == 1
    finally:
        worker.stop()
        redis.stop()


async def test_worker_killed_mid_send_sends_exactly_once_after_restart(
    pg_url: str, smtp: SmtpSink, pg: AsyncEngine, tmp_path: Path
) -> None:
    redis = RedisServer()
    redis.start()
    env = worker_env(pg_url, redis, smtp, tmp_path / "wdata")
    worker = Worker(env, tmp_path / "worker.log")
    worker.start()
    try:
        import threading

        hold = threading.Event()
        smtp.behaviour.hold_rcpt = hold
        async with AsyncTestClient(app=create_app(api_settings(pg_url, redis, tmp_path))) as api:
            await api.post("/api/intake", json=submission(EMERGENCY_ANSWERS, email="noor@example.com"))
        wait_for(smtp.behaviour.rcpt_seen.is_set, 20, "the worker to be in the middle of sending")
        worker.kill()
        hold.set()
        rows = await deliveries(pg)
        assert any(r.status == "sending" for r in rows)
        assert smtp.received == []

        worker = Worker(env, tmp_path / "worker2.log")
        worker.start()
        wait_for(lambda: len(smtp.to("noor@example.com")) >= 1, 60, "the email after the restart")
        wait_for(lambda: any(set(STAFF) <= set(r.rcpt_tos) for r in smtp.received), 30, "the staff alert")
        assert_sent_once_when_quiet(database_url=pg_url, emails=smtp, broker=redis, worker_logs=worker.logs)
        assert len(smtp.to("noor@example.com")) == 1
        assert len([r for r in smtp.received if set(STAFF) <= set(r.rcpt_tos)]) == 1
        assert {r.status for r in await deliveries(pg)} == {"sent"}
    finally:
        worker.stop()
        redis.stop()


def test_task_arguments_are_ids_only() -> None:
    outbox_id = uuid.uuid4()
    from intake.messaging.publishing.publication import Publication

    publication = Publication(kinds.TASK_ROUTE_SCREENING, outbox_id, kinds.ALERTS_QUEUE)
    sent: list[dict[str, Any]] = []

    class Recorder:
        def send_task(self, name: str, **options: Any) -> None:
            sent.append({"name": name, **options})

    from intake.messaging.publishing.celery_app import CeleryBroker

    CeleryBroker(Recorder()).send(publication)  # type: ignore[arg-type]
    assert sent == [{"name": kinds.TASK_ROUTE_SCREENING, "args": [str(outbox_id)], "queue": "alerts", "retry": False}]
