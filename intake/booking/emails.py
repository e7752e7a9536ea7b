"""Booking emails with a calendar part: the confirmation (a new time) and the cancellation.

The person's calendar knows a consultation by one UID for its whole life: the id of the first
booking, kept when it is moved (a move is a new booking row pointing back at the one it replaces),
with a SEQUENCE that rises at each change. So a move updates the event already in the calendar
(METHOD:REQUEST) and a cancellation removes it (METHOD:CANCEL).
"""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage
from email.utils import parseaddr

import icalendar
from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.booking import links
from intake.db.models import Booking, Delivery, Lead
from intake.messaging import kinds
from intake.messaging.mail.builder import EmailBuilder, format_local, place_of
from intake.messaging.mail.transport import PermanentFailure
from intake.messaging.sending import Compose, Loaded
from intake.settings import Settings

_SUMMARY = {"en": "Free consultation — Empower Fitness", "es": "Consulta gratuita — Empower Fitness"}
_LINK_LABELS = {
    "en": ("Cancel", "Reschedule"),
    "es": ("Cancelar", "Cambiar la hora"),
}


def calendar_identity(session: Session, booking: Booking) -> tuple[str, int]:
    """The consultation's calendar UID (its first booking's id) and how many times it was moved."""
    root, moves, previous = booking.id, 0, booking.rescheduled_from_id
    while previous is not None:
        root, moves = previous, moves + 1
        previous = session.execute(
            select(Booking.rescheduled_from_id).where(Booking.id == previous)
        ).scalar_one_or_none()
    return str(root), moves


def invitation(
    booking: Booking,
    lead: Lead,
    settings: Settings,
    *,
    cancel_url: str,
    reschedule_url: str,
    lang: str,
    uid: str | None = None,
    sequence: int = 0,
    cancelled: bool = False,
) -> bytes:
    """An iCalendar REQUEST (or CANCEL) for the consultation's UID, times in UTC, and the manage links."""
    cancel_label, reschedule_label = _LINK_LABELS.get(lang, _LINK_LABELS["en"])
    organizer_address = parseaddr(settings.smtp.from_address)[1]
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Empower Fitness//intake//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if cancelled else "REQUEST")
    event = icalendar.Event()
    event.add("uid", uid or str(booking.id))
    event.add("dtstamp", dt.datetime.now(dt.UTC))
    event.add("dtstart", booking.starts_at.astimezone(dt.UTC))
    event.add("dtend", booking.ends_at.astimezone(dt.UTC))
    event.add("summary", _SUMMARY.get(lang, _SUMMARY["en"]))
    event.add("location", place_of(booking.location, lang, settings))
    event.add(
        "description",
        f"{cancel_label}: {cancel_url}\n{reschedule_label}: {reschedule_url}\n{settings.clinic.phone}",
    )
    event.add("url", reschedule_url)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("sequence", sequence)
    if organizer_address:
        organizer = icalendar.vCalAddress(f"mailto:{organizer_address}")
        organizer.params["cn"] = icalendar.vText(settings.clinic.name)
        event.add("organizer", organizer)
    attendee = icalendar.vCalAddress(f"mailto:{lead.email}")
    # No RSVP asked for: a reply would only land in the clinic's mailbox; the links change the booking.
    attendee.params["rsvp"] = icalendar.vText("FALSE")
    attendee.params["partstat"] = icalendar.vText("ACCEPTED")
    event.add("attendee", attendee)
    calendar.add_component(event)
    return bytes(calendar.to_ical())


def booking_email(
    builder: EmailBuilder,
    delivery: Delivery,
    lead: Lead,
    booking: Booking,
    settings: Settings,
    identity: tuple[str, int] | None = None,
) -> EmailMessage:
    """The delivery's booking email, with the .ics for the person's calendar (`identity`: the UID and
    the number of moves, from `calendar_identity`):

    - `booking_confirmation`: the booking, or its new time after a move (METHOD:REQUEST);
    - `booking_cancellation`: cancelled by the person or the clinic (METHOD:CANCEL), with the
      person's own link to book another time.
    """
    uid, moves = identity or (str(booking.id), 0)
    lang = _language(lead)
    cancelled = delivery.kind == kinds.KIND_BOOKING_CANCELLATION
    context: dict[str, object] = (
        {"book_url": links.booking_url(settings, lead.id)}
        if cancelled
        else {
            "minutes": int((booking.ends_at - booking.starts_at).total_seconds() // 60),
            "location": booking.location,
            "place": place_of(booking.location, lang, settings),
            "moved": booking.rescheduled_from_id is not None,
            "cutoff_hours": settings.booking.change_cutoff_hours,
        }
    )
    cancel_url, reschedule_url = links.manage_urls(settings, booking.id, booking.starts_at)
    subject, text, html = builder.render(
        kinds.KIND_BOOKING_CANCELLATION if cancelled else kinds.KIND_BOOKING_CONFIRMATION,
        lang,
        {
            "first_name": lead.first_name,
            "when": format_local(booking.starts_at, lang, settings.clinic.timezone),
            "cancel_url": cancel_url,
            "reschedule_url": reschedule_url,
            **context,
        },
    )
    message = builder.rich_message(delivery, [lead.email], subject, text, html)
    ics = invitation(
        booking,
        lead,
        settings,
        cancel_url=cancel_url,
        reschedule_url=reschedule_url,
        lang=lang,
        uid=uid,
        sequence=moves + 1 if cancelled else moves,
        cancelled=cancelled,
    )
    method = "CANCEL" if cancelled else "REQUEST"
    params = {"method": method, "charset": "utf-8"}
    message.add_attachment(ics, maintype="text", subtype="calendar", filename="consultation.ics", params=params)
    return message


class BookingEmails:
    """The composers of the booking kinds, for the worker's sender."""

    def __init__(self, builder: EmailBuilder, settings: Settings):
        self._builder = builder
        self._settings = settings

    def composers(self) -> dict[str, Compose]:
        return dict.fromkeys(kinds.BOOKING_KINDS, self._compose)

    def _compose(self, session: Session, delivery: Delivery, loaded: Loaded, _: dt.datetime) -> EmailMessage:
        if loaded.booking is None:
            raise PermanentFailure(f"{delivery.kind} needs a booking")
        identity = calendar_identity(session, loaded.booking)
        return booking_email(self._builder, delivery, loaded.lead, loaded.booking, self._settings, identity)


def _language(lead: Lead) -> str:
    return lead.language if lead.language in _SUMMARY else "en"


__all__ = ["BookingEmails", "booking_email", "calendar_identity", "invitation"]
