"""Builds the emails of each delivery kind from Jinja2 templates: text and HTML, in the person's language."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from intake import tokens
from intake.booking.links import booking_url
from intake.db.models import Booking, Delivery, Lead, Screening
from intake.messaging import followups, kinds
from intake.screening import Assessment, Catalog, Route, Tier
from intake.settings import Settings

_DAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
}
_MONTHS = {
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    "es": (
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ),
}
_PLACES = {
    "en": {"virtual": "Virtual", "in_home": "At your home"},
    "es": {"virtual": "Virtual", "in_home": "En su domicilio"},
}


def format_local(moment: dt.datetime, lang: str, zone: str) -> str:
    """`Monday, March 9, 2026 at 9:00 AM` / `lunes, 9 de marzo de 2026, a las 9:00 a. m.` in clinic time."""
    local = moment.astimezone(ZoneInfo(zone))
    hour = local.hour % 12 or 12
    day, month = _DAYS[lang][local.weekday()], _MONTHS[lang][local.month - 1]
    if lang == "es":
        half = "a. m." if local.hour < 12 else "p. m."
        return f"{day}, {local.day} de {month} de {local.year}, a las {hour}:{local.minute:02d} {half}"
    half = "AM" if local.hour < 12 else "PM"
    return f"{day}, {month} {local.day}, {local.year} at {hour}:{local.minute:02d} {half}"


def place_of(location: str, lang: str, settings: Settings) -> str:
    return settings.booking.addresses.get(location) or _PLACES[lang].get(location, location)


@dataclass(frozen=True, slots=True)
class ClinicView:
    name: str
    address: str
    phone: str
    phone_display: str


def display_phone(e164: str) -> str:
    try:
        return phonenumbers.format_number(phonenumbers.parse(e164, "US"), phonenumbers.PhoneNumberFormat.NATIONAL)
    except phonenumbers.NumberParseException:
        return e164


class EmailBuilder:
    def __init__(self, settings: Settings, catalog: Catalog):
        self._settings = settings
        self._catalog = catalog
        self._env = Environment(
            loader=PackageLoader("intake.messaging", "templates"),
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )
        clinic = settings.clinic
        self._clinic = ClinicView(clinic.name, clinic.address, clinic.phone, display_phone(clinic.phone))

    def render(self, kind: str, lang: str, context: dict[str, Any]) -> tuple[str, str, str]:
        """(subject, text, html); the subject is fixed per kind and language and carries no patient data."""
        context = {"clinic": self._clinic, "lang": lang, **context}
        text_template = self._env.get_template(f"{kind}.{lang}.txt.j2")
        subject = str(text_template.make_module(context).subject)  # type: ignore[attr-defined]
        text = text_template.render(context)
        html = self._env.get_template(f"{kind}.{lang}.html.j2").render(context)
        return subject, text, html

    def message(self, delivery: Delivery, to: list[str], subject: str, text: str, html: str) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = self._settings.smtp.from_address
        message["To"] = ", ".join(to)
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(idstring=delivery.id.hex, domain="intake.local")
        message["X-Intake-Delivery"] = str(delivery.id)
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        return message

    def patient_email(self, delivery: Delivery, lead: Lead, screening: Screening) -> EmailMessage:
        lang = screening.language
        rule_set = self._catalog.get(screening.rule_set_version)
        assessment = Assessment(
            tier=Tier(screening.tier),
            route=Route(screening.route),
            score=screening.score,
            rule_codes=tuple(r["code"] for r in screening.reasons),
        )
        clinic = self._settings.clinic
        advice = rule_set.advice(assessment, lang, clinic_phone=clinic.phone, booking_url=clinic.booking_url)  # type: ignore[arg-type]
        subject, text, html = self.render(
            delivery.kind,
            lang,
            {
                "first_name": lead.first_name,
                "advice": advice,
                "disclaimer": rule_set.disclaimer(lang),  # type: ignore[arg-type]
                "booking_url": booking_url(self._settings, lead.id),
                "unsubscribe_url": self.unsubscribe_url(lead),
            },
        )
        message = self.message(delivery, [lead.email], subject, text, html)
        if delivery.kind not in kinds.TRANSACTIONAL_KINDS:
            self.add_unsubscribe(message, lead)
        return message

    def unsubscribe_url(self, lead: Lead) -> str:
        token = tokens.sign(tokens.jwt_secret(self._settings), tokens.UNSUBSCRIBE, lead.id, dt.timedelta(days=730))
        return f"{self._settings.app.public_base_url}/u/{token}"

    def add_unsubscribe(self, message: EmailMessage, lead: Lead) -> None:
        """RFC 8058 one-click unsubscribe: mail clients POST `List-Unsubscribe=One-Click` to the link."""
        message["List-Unsubscribe"] = f"<{self.unsubscribe_url(lead)}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"

    def follow_up(self, delivery: Delivery, lead: Lead, booking: Booking | None) -> EmailMessage:
        found = followups.sequence_of_kind(delivery.kind)
        if found is None:
            raise ValueError(f"{delivery.kind} is not a follow-up")
        _, step = found
        lang = lead.language
        context: dict[str, Any] = {
            "first_name": lead.first_name,
            "booking_url": booking_url(self._settings, lead.id),
            "unsubscribe_url": self.unsubscribe_url(lead),
            "when": format_local(booking.starts_at, lang, self._settings.clinic.timezone) if booking else "",
            "where": place_of(booking.location, lang, self._settings) if booking else "",
        }
        subject, text, html = self.render(step.template, lang, context)
        message = self.message(delivery, [lead.email], subject, text, html)
        self.add_unsubscribe(message, lead)
        return message

    def staff_alert(self, delivery: Delivery, lead: Lead, screening: Screening, now: dt.datetime) -> EmailMessage:
        subject, text, html = self.render(delivery.kind, "en", alert_facts(lead, screening, self._settings, now))
        return self.message(delivery, list(self._settings.alerts.staff_emails), subject, text, html)


def alert_facts(lead: Lead, screening: Screening, settings: Settings, now: dt.datetime) -> dict[str, Any]:
    """What a staff alert may say: ids, tier, speed to lead and a link. Never answers or contact details."""
    minutes = max(0, int((now - screening.created_at).total_seconds() // 60))
    return {
        "lead_id": str(lead.id),
        "tier": screening.tier,
        "minutes_since": minutes,
        "lead_url": f"{settings.app.public_base_url}/api/leads/{lead.id}",
    }
