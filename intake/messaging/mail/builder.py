"""Builds emails from Jinja2 templates: text and HTML, in the person's language, with the headers every email needs.

The domains own their templates (`templates/email/` beside them) and what goes into them; this module only renders
and wraps. Dates and places are written the way each language writes them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from email.charset import BASE64, Charset
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import formatdate, parseaddr
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined, Template, select_autoescape

from intake import tokens
from intake.db.models import Delivery, Lead
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


_UTF8_8BIT = Charset("utf-8")
_UTF8_8BIT.body_encoding = None  # type: ignore[assignment]  # 8bit: no quoted-printable pass over each character
_UTF8_BASE64 = Charset("utf-8")
_UTF8_BASE64.body_encoding = BASE64
_MAX_LINE = 998  # RFC 5322; a longer line (a long link in HTML) is sent base64 instead of 8bit


def header_value(value: str) -> str:
    """ASCII as it is; anything else as an RFC 2047 encoded word (the compat32 classes do not encode)."""
    return value if value.isascii() else Header(value, "utf-8").encode()


def text_part(body: str, subtype: str) -> MIMENonMultipart:
    part = MIMENonMultipart("text", subtype)
    lines = body.splitlines()
    too_long = bool(lines) and max(map(len, lines)) > _MAX_LINE
    part.set_payload(body, _UTF8_BASE64 if too_long else _UTF8_8BIT)
    return part


class EmailBuilder:
    """Plain text + HTML emails with the `email.mime` compat classes: several times cheaper to build and
    flatten than `EmailMessage` with the default policy. Templates are looked up once per kind and language."""

    def __init__(self, settings: Settings, template_packages: tuple[str, ...]):
        """`template_packages`: the packages whose `templates/email/` hold the templates of their kinds."""
        self._settings = settings
        loaders = [PackageLoader(package, "templates/email") for package in template_packages]
        self._env = Environment(
            loader=ChoiceLoader([*loaders, PackageLoader("intake.messaging.mail", "templates")]),
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            auto_reload=False,  # no stat of the template file per email
        )
        self._templates: dict[tuple[str, str], tuple[Template, Template]] = {}
        clinic = settings.clinic
        self._clinic = ClinicView(clinic.name, clinic.address, clinic.phone, display_phone(clinic.phone))
        self._from = header_value(settings.smtp.from_address)
        self._message_domain = parseaddr(settings.smtp.from_address)[1].rpartition("@")[2] or "intake.local"

    def templates(self, kind: str, lang: str) -> tuple[Template, Template]:
        """(text, HTML) templates of a kind in a language, compiled on first use and kept."""
        found = self._templates.get((kind, lang))
        if found is None:
            found = (
                self._env.get_template(f"{kind}.{lang}.txt.j2"),
                self._env.get_template(f"{kind}.{lang}.html.j2"),
            )
            self._templates[(kind, lang)] = found
        return found

    def render(self, kind: str, lang: str, context: dict[str, Any]) -> tuple[str, str, str]:
        """(subject, text, html); the subject is fixed per kind and language and carries no patient data."""
        context = {"clinic": self._clinic, "lang": lang, **context}
        text_template, html_template = self.templates(kind, lang)
        module = text_template.make_module(context)  # renders once: the body and the `subject` it sets
        subject = str(module.subject)  # type: ignore[attr-defined]
        return subject, str(module), html_template.render(context)

    def message(self, delivery: Delivery, to: list[str], subject: str, text: str, html: str) -> Message:
        """Text and HTML alternatives (compat classes). An address that is not ASCII needs SMTPUTF8, which
        only `EmailMessage` (and smtplib's send_message) handle."""
        if not all(address.isascii() for address in to):
            return self.rich_message(delivery, to, subject, text, html)
        # A random boundary of our own: the generator would otherwise search both bodies for a free one.
        message = MIMEMultipart("alternative", boundary=f"=_intake_{uuid.uuid4().hex}")
        self._headers(message, delivery, to, subject)
        message.attach(text_part(text, "plain"))
        message.attach(text_part(html, "html"))
        return message

    def rich_message(self, delivery: Delivery, to: list[str], subject: str, text: str, html: str) -> EmailMessage:
        """An `EmailMessage` (default policy), for emails that take attachments: the booking confirmation."""
        message = EmailMessage()
        self._headers(message, delivery, to, subject)
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        return message

    def _headers(self, message: Message, delivery: Delivery, to: list[str], subject: str) -> None:
        message["Subject"] = header_value(subject)
        message["From"] = self._from
        message["To"] = ", ".join(to)
        message["Date"] = formatdate(localtime=False)
        # One Message-ID per delivery, the same at every attempt: a mail system that deduplicates on it
        # drops a second copy sent after a worker died between the server's 250 and recording `sent`.
        message["Message-ID"] = f"<{delivery.id.hex}@{self._message_domain}>"
        message["X-Intake-Delivery"] = str(delivery.id)
        message["Auto-Submitted"] = "auto-generated"

    def unsubscribe_url(self, lead: Lead) -> str:
        """Signed once per email: the same link goes in the footer and in the List-Unsubscribe header."""
        token = tokens.sign(tokens.jwt_secret(self._settings), tokens.UNSUBSCRIBE, lead.id, dt.timedelta(days=730))
        return f"{self._settings.app.public_base_url}/u/{token}"


def add_unsubscribe(message: Message, unsubscribe_url: str) -> None:
    """RFC 8058 one-click unsubscribe: mail clients POST `List-Unsubscribe=One-Click` to the link."""
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"


__all__ = [
    "ClinicView",
    "EmailBuilder",
    "add_unsubscribe",
    "display_phone",
    "format_local",
    "header_value",
    "place_of",
    "text_part",
]
