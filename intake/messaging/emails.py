"""Builds the emails of each delivery kind from Jinja2 templates: text and HTML, in the person's language."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import phonenumbers
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from intake.db.models import Delivery, Lead, Screening
from intake.screening import Assessment, Catalog, Route, Tier
from intake.settings import Settings


@dataclass(frozen=True, slots=True)
class ClinicView:
    name: str
    address: str
    phone: str
    phone_display: str


def _display_phone(e164: str) -> str:
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
        self._clinic = ClinicView(clinic.name, clinic.address, clinic.phone, _display_phone(clinic.phone))

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
                "booking_url": clinic.booking_url,
            },
        )
        return self.message(delivery, [lead.email], subject, text, html)

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
