"""Plain text + HTML emails built with the compat classes read, once on the wire, as the reader expects."""

from __future__ import annotations

import email
import email.policy
import uuid
from email.message import EmailMessage
from pathlib import Path

import pytest

from intake.db.models import Delivery, Lead
from intake.leads.emails import FollowThroughEmails
from intake.messaging.mail.builder import EmailBuilder
from intake.messaging.mail.transport import FileTransport
from intake.screening import load_catalog
from intake.settings import Settings
from tests.conftest import make_settings
from workers.context import EMAIL_TEMPLATE_PACKAGES


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings("sqlite+aiosqlite:///unused.db", tmp_path, clinic={"name": "Clínica Empower"})


def emails_of(settings: Settings) -> FollowThroughEmails:
    return FollowThroughEmails(EmailBuilder(settings, EMAIL_TEMPLATE_PACKAGES), settings, load_catalog())


def reminder(settings: Settings, address: str = "lucia@example.com") -> tuple[Delivery, email.message.Message]:
    lead = Lead(id=uuid.uuid4(), first_name="Lucía", email=address, language="es")
    delivery = Delivery(id=uuid.uuid4(), lead_id=lead.id, kind="booking_reminder_1")
    return delivery, emails_of(settings).follow_up(delivery, lead, None)


def as_read(settings: Settings, delivery: Delivery, message: email.message.Message) -> EmailMessage:
    """Written by the .eml transport and parsed back as a mail client does."""
    FileTransport(settings).send(message)
    raw = (settings.app.data_dir / "emails" / f"{delivery.id}.eml").read_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_a_spanish_reminder_reads_back_whole(settings: Settings) -> None:
    delivery, message = reminder(settings)
    read = as_read(settings, delivery, message)
    assert str(read["Subject"]) == "Su consulta gratuita le espera"
    assert str(read["X-Intake-Delivery"]) == str(delivery.id)
    assert read["List-Unsubscribe"].startswith("<http") and read["List-Unsubscribe"].endswith(">")
    assert read["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = read.get_body(preferencelist=("plain",))
    html = read.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert "Hola Lucía" in text.get_content() and "Lucía" in html.get_content()
    # One token per email: the footer's link is the header's link.
    assert read["List-Unsubscribe"].strip("<>") in text.get_content()
    assert "Clínica Empower" in text.get_content()


def test_a_line_too_long_for_8bit_goes_base64(settings: Settings) -> None:
    builder = EmailBuilder(settings, EMAIL_TEMPLATE_PACKAGES)
    delivery = Delivery(id=uuid.uuid4(), kind="booking_reminder_1")
    long_line = "ñ" + "x" * 1200
    message = builder.message(delivery, ["a@example.com"], "Asunto: ñ", "short", long_line)
    read = as_read(settings, delivery, message)
    html = read.get_body(preferencelist=("html",))
    assert html is not None and html["Content-Transfer-Encoding"] == "base64"
    assert html.get_content().rstrip("\n") == long_line
    assert str(read["Subject"]) == "Asunto: ñ"


def test_an_address_that_is_not_ascii_gets_an_email_message(settings: Settings) -> None:
    _, message = reminder(settings, "lucía@example.com")
    assert isinstance(message, EmailMessage)  # SMTPUTF8 through smtplib's send_message


def test_every_attempt_at_a_delivery_carries_the_same_message_id(settings: Settings) -> None:
    builder = emails_of(settings)
    lead = Lead(id=uuid.uuid4(), first_name="Lucía", email="lucia@example.com", language="es")
    delivery = Delivery(id=uuid.uuid4(), lead_id=lead.id, kind="booking_reminder_1")
    first, retry = (builder.follow_up(delivery, lead, None) for _ in range(2))
    domain = settings.smtp.from_address.rpartition("@")[2].strip(">")
    assert first["Message-ID"] == retry["Message-ID"] == f"<{delivery.id.hex}@{domain}>"
    other = Delivery(id=uuid.uuid4(), lead_id=lead.id, kind="booking_reminder_1")
    assert builder.follow_up(other, lead, None)["Message-ID"] != first["Message-ID"]


def test_the_staff_alert_says_its_link_is_for_the_staff_api(settings: Settings) -> None:
    """The link is GET /api/leads/{id}, which needs a bearer token: the email must not pass it off as a page."""
    import datetime as dt

    from intake.db.models import Screening

    lead = Lead(id=uuid.uuid4(), first_name="Lucía", email="lucia@example.com", language="es")
    now = dt.datetime.now(dt.UTC)
    screening = Screening(id=uuid.uuid4(), lead_id=lead.id, tier="urgent", route="seek_care_now", created_at=now)
    delivery = Delivery(id=uuid.uuid4(), lead_id=lead.id, kind="staff_alert")
    read = as_read(settings, delivery, emails_of(settings).staff_alert(delivery, lead, screening, now))
    for kind in ("plain", "html"):
        part = read.get_body(preferencelist=(kind,))
        assert part is not None
        text = " ".join(part.get_content().split())
        assert f"{settings.app.public_base_url}/api/leads/{lead.id}" in text
        assert "for the staff API" in text and "staff board" in text
        assert "Open the lead" not in text
