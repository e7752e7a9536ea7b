"""The booking confirmation: local time in the person's language, a subject without patient data, a valid .ics."""

from __future__ import annotations

import datetime as dt
import uuid
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import icalendar
import jwt
import pytest

from intake import tokens
from intake.booking.emails import booking_email
from intake.db.models import Booking, Delivery, Lead
from intake.messaging.mail.builder import EmailBuilder
from intake.screening import Catalog, load_catalog
from intake.settings import Settings
from tests.conftest import make_settings
from workers.context import EMAIL_TEMPLATE_PACKAGES


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings("sqlite+aiosqlite:///unused.db", tmp_path)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def make(
    *, language: str = "en", location: str = "boca_raton", starts_at: dt.datetime, moved: bool = False
) -> tuple[Delivery, Lead, Booking]:
    lead = Lead(
        id=uuid.uuid4(),
        first_name="Rosa",
        last_name="Delgado",
        email="rosa.delgado@example.com",
        language=language,
        location=location,
        zip="33431",
    )
    booking = Booking(
        id=uuid.uuid4(),
        lead_id=lead.id,
        staff_id=uuid.uuid4(),
        location=location,
        starts_at=starts_at,
        ends_at=starts_at + dt.timedelta(minutes=30),
        status="booked",
        rescheduled_from_id=uuid.uuid4() if moved else None,
    )
    delivery = Delivery(id=uuid.uuid4(), lead_id=lead.id, kind="booking_confirmation", ref_id=booking.id)
    return delivery, lead, booking


def calendar_of(message: EmailMessage) -> icalendar.Calendar:
    parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    assert parts[0].get_param("method") == "REQUEST"
    assert parts[0].get_filename() == "consultation.ics"
    return icalendar.Calendar.from_ical(parts[0].get_payload(decode=True))


def bodies(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


def test_english_confirmation_in_clinic_time_with_an_invitation(settings: Settings, catalog: Catalog) -> None:
    # 13:00 UTC on the Monday after the March change is 9:00 AM Eastern Daylight Time.
    starts_at = dt.datetime(2026, 3, 9, 13, 0, tzinfo=dt.UTC)
    delivery, lead, booking = make(starts_at=starts_at)
    message = booking_email(EmailBuilder(settings, EMAIL_TEMPLATE_PACKAGES), delivery, lead, booking, settings)

    subject = str(message["Subject"])
    assert "Empower Fitness" in subject
    for private in ("Rosa", "Delgado", "rosa.delgado", "9:00", "March"):
        assert private not in subject
    assert message["To"] == "rosa.delgado@example.com"
    text, html = bodies(message)
    assert "Monday, March 9, 2026 at 9:00 AM" in text and "Monday, March 9, 2026 at 9:00 AM" in html
    assert "Hello Rosa" in text
    assert settings.booking.addresses["boca_raton"] in text

    event = calendar_of(message).walk("VEVENT")[0]
    assert str(calendar_of(message)["METHOD"]) == "REQUEST"
    assert str(event["UID"]) == str(booking.id)
    assert event.decoded("DTSTART") == starts_at
    assert event.decoded("DTSTART").utcoffset() == dt.timedelta(0)
    assert event.decoded("DTEND") == starts_at + dt.timedelta(minutes=30)
    assert str(event["SUMMARY"]) == "Free consultation — Empower Fitness"
    assert str(event["LOCATION"]) == settings.booking.addresses["boca_raton"]
    description = str(event["DESCRIPTION"])
    urls = [word for word in description.split() if word.startswith("http")]
    assert len(urls) == 2
    cancel, reschedule = urls
    assert cancel.startswith(f"{settings.clinic.booking_url}/cancel?token=")
    assert reschedule.startswith(f"{settings.clinic.booking_url}/reschedule?token=")
    assert cancel in text and reschedule in text
    # The links carry a manage token for this booking (checked without its expiry: 2026-03-09 may be past).
    token = parse_qs(urlsplit(cancel).query)["token"][0]
    claims = jwt.decode(
        token,
        tokens.jwt_secret(settings),
        algorithms=["HS256"],
        audience=tokens.MANAGE_BOOKING,
        options={"verify_exp": False},
    )
    assert claims["sub"] == str(booking.id)


def test_links_in_the_email_work_until_the_cutoff(settings: Settings, catalog: Catalog) -> None:
    starts_at = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).replace(microsecond=0)
    delivery, lead, booking = make(starts_at=starts_at)
    message = booking_email(EmailBuilder(settings, EMAIL_TEMPLATE_PACKAGES), delivery, lead, booking, settings)
    event = calendar_of(message).walk("VEVENT")[0]
    reschedule = str(event["URL"])
    token = parse_qs(urlsplit(reschedule).query)["token"][0]
    assert tokens.verify(tokens.jwt_secret(settings), tokens.MANAGE_BOOKING, token) == booking.id
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    cutoff = starts_at - dt.timedelta(hours=settings.booking.change_cutoff_hours)
    assert abs(expires - cutoff.timestamp()) < 5


def test_spanish_confirmation_after_the_november_change_at_home(settings: Settings, catalog: Catalog) -> None:
    # 15:30 UTC on the day after the November change is 10:30 AM Eastern Standard Time.
    starts_at = dt.datetime(2026, 11, 2, 15, 30, tzinfo=dt.UTC)
    delivery, lead, booking = make(language="es", location="in_home", starts_at=starts_at, moved=True)
    message = booking_email(EmailBuilder(settings, EMAIL_TEMPLATE_PACKAGES), delivery, lead, booking, settings)
    subject = str(message["Subject"])
    assert subject.startswith("Nueva hora") and "Rosa" not in subject
    text, html = bodies(message)
    assert "lunes, 2 de noviembre de 2026, a las 10:30 a. m." in text
    assert "Hola Rosa" in text and "nueva hora" in html
    event = calendar_of(message).walk("VEVENT")[0]
    assert str(event["SUMMARY"]) == "Consulta gratuita — Empower Fitness"
    assert str(event["LOCATION"]) == "En su domicilio"
    assert event.decoded("DTSTART") == starts_at


def test_virtual_location_and_a_fresh_booking_subject(settings: Settings, catalog: Catalog) -> None:
    delivery, lead, booking = make(location="virtual", starts_at=dt.datetime(2026, 12, 1, 22, 0, tzinfo=dt.UTC))
    message = booking_email(EmailBuilder(settings, EMAIL_TEMPLATE_PACKAGES), delivery, lead, booking, settings)
    assert str(message["Subject"]).startswith("Your free consultation is booked")
    assert str(calendar_of(message).walk("VEVENT")[0]["LOCATION"]) == "Virtual"
    text, _ = bodies(message)
    assert "Tuesday, December 1, 2026 at 5:00 PM" in text
    assert "video call" in text


@pytest.mark.parametrize(
    ("language", "opening"), [("en", "Your free consultation is cancelled"), ("es", "Su consulta")]
)
def test_cancellation_removes_the_calendar_event_and_offers_a_new_time(
    settings: Settings, catalog: Catalog, language: str, opening: str
) -> None:
    starts_at = dt.datetime(2026, 3, 9, 13, 0, tzinfo=dt.UTC)
    delivery, lead, booking = make(language=language, starts_at=starts_at, moved=True)
    delivery.kind = "booking_cancellation"
    first_booking = str(uuid.uuid4())
    message = booking_email(
        EmailBuilder(settings, EMAIL_TEMPLATE_PACKAGES), delivery, lead, booking, settings, (first_booking, 1)
    )

    subject = str(message["Subject"])
    assert subject.startswith(opening) and "Rosa" not in subject and "March" not in subject and "marzo" not in subject
    assert "List-Unsubscribe" not in message  # transactional
    text, html = bodies(message)
    assert settings.clinic.booking_url in text and settings.clinic.booking_url in html
    (part,) = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert part.get_param("method") == "CANCEL"
    calendar = icalendar.Calendar.from_ical(part.get_payload(decode=True))
    assert str(calendar["METHOD"]) == "CANCEL"
    event = calendar.walk("VEVENT")[0]
    assert (str(event["UID"]), int(event["SEQUENCE"]), str(event["STATUS"])) == (first_booking, 2, "CANCELLED")
