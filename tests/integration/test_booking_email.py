"""The booking confirmation end to end: a real worker sends it over SMTP with the .ics, once per booking."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import icalendar
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.app import create_app
from intake.db.models import Delivery
from tests.booking_fixtures import new_lead, open_every_day, parse, slots, token_for
from tests.conftest import emptied_after, make_settings
from tests.quiet import assert_sent_once_when_quiet
from tests.services import PUBLIC_BASE_URL, RedisServer, SmtpSink, Worker, decoded, wait_for, worker_env
from tests.staff_fixtures import make_staff

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def worker(
    pg_url: str, redis: RedisServer, smtp: SmtpSink, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    folder = tmp_path_factory.mktemp("bworker")
    process = Worker(worker_env(pg_url, redis, smtp, folder / "data"), folder / "worker.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[AsyncEngine]:
    async for engine in emptied_after(pg_url):
        yield engine


def calendar_in(received: Any) -> icalendar.Calendar:
    parts = [p for p in received.message.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    return icalendar.Calendar.from_ical(parts[0].get_payload(decode=True))


async def test_booking_and_moving_each_send_one_confirmation_with_an_invitation(
    pg_url: str, pg: AsyncEngine, redis: RedisServer, smtp: SmtpSink, worker: Worker, tmp_path: Path
) -> None:
    smtp.reset()
    # The API and the worker agree on where links point, as PUBLIC_BASE_URL makes them in production.
    settings = make_settings(
        pg_url,
        tmp_path / "api",
        broker={"redis_url": redis.url},
        app={"public_base_url": PUBLIC_BASE_URL},
        clinic={"booking_url": f"{PUBLIC_BASE_URL}/book"},
    )
    async with AsyncTestClient(app=create_app(settings)) as client:
        staff = await make_staff(settings, client)
        await open_every_day(client, staff)
        address = "marisol.vega@example.com"
        lead = await new_lead(client, first_name="Marisol", last_name="Vega", email=address, language="es")
        wait_for(lambda: len(smtp.to(address)) >= 1, 20, "the booking invitation")
        offered = await slots(client, token_for(settings, lead))
        booked = await client.post(
            "/api/booking", json={"token": token_for(settings, lead), "starts_at": offered[0]["starts_at"]}
        )
        assert booked.status_code == 201, booked.text
        booking = booked.json()
        wait_for(lambda: len(smtp.to(address)) >= 2, 20, "the booking confirmation")

        confirmation = smtp.to(address)[1]
        subject = str(confirmation.message["Subject"])
        assert subject.startswith("Su consulta gratuita") and "Marisol" not in subject and "Vega" not in subject
        text = decoded(confirmation)
        assert "Hola Marisol" in text and "de 20" in text and "a las " in text
        event = calendar_in(confirmation).walk("VEVENT")[0]
        assert str(event["UID"]) == booking["id"]
        assert event.decoded("DTSTART") == parse(booking["starts_at"])
        assert str(event["SUMMARY"]) == "Consulta gratuita — Empower Fitness"
        assert booking["cancel_url"].split("?")[0] in str(event["DESCRIPTION"])

        token = booking["cancel_url"].split("token=")[1]
        moved = await client.post(
            "/api/booking/reschedule", json={"token": token, "starts_at": offered[3]["starts_at"]}
        )
        assert moved.status_code == 200, moved.text
        wait_for(lambda: len(smtp.to(address)) >= 3, 20, "the confirmation of the new time")
        second = smtp.to(address)[2]
        assert str(second.message["Subject"]).startswith("Nueva hora")
        # The same event in the person's calendar, at its new time: the first booking's UID, SEQUENCE 1.
        calendar = calendar_in(second)
        assert str(calendar["METHOD"]) == "REQUEST"
        event = calendar.walk("VEVENT")[0]
        assert str(event["UID"]) == booking["id"] != moved.json()["id"]
        assert int(event["SEQUENCE"]) == 1
        assert event.decoded("DTSTART") == parse(offered[3]["starts_at"])

        new_token = moved.json()["cancel_url"].split("token=")[1]
        cancelled = await client.post("/api/booking/cancel", json={"token": new_token})
        assert cancelled.status_code == 200, cancelled.text
        assert (await client.post("/api/booking/cancel", json={"token": new_token})).status_code == 200
        wait_for(lambda: len(smtp.to(address)) >= 4, 20, "the cancellation")
        third = smtp.to(address)[3]
        subject = str(third.message["Subject"])
        assert subject.startswith("Su consulta gratuita está cancelada") and "Marisol" not in subject
        assert "Hola Marisol" in decoded(third) and settings.clinic.booking_url in decoded(third)
        calendar = calendar_in(third)
        assert str(calendar["METHOD"]) == "CANCEL"
        event = calendar.walk("VEVENT")[0]
        assert str(event["UID"]) == booking["id"] and int(event["SEQUENCE"]) == 2
        assert str(event["STATUS"]) == "CANCELLED"

    async with pg.connect() as connection:
        rows = (
            await connection.execute(select(Delivery.kind, Delivery.status).where(Delivery.ref_id.is_not(None)))
        ).all()
    assert sorted(rows) == [
        ("booking_cancellation", "sent"),
        ("booking_confirmation", "sent"),
        ("booking_confirmation", "sent"),
    ]
    emails = assert_sent_once_when_quiet(database_url=pg_url, emails=smtp, broker=redis, worker_logs=worker.logs)
    assert len([e for e in emails if address in e.recipients]) == 4  # cancelling twice sent one cancellation
