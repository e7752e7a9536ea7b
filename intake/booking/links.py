"""The signed links patients get by email: book a consultation, and manage (cancel, reschedule) one."""

from __future__ import annotations

import datetime as dt
import uuid
from urllib.parse import urlencode

from intake import tokens
from intake.settings import Settings


def booking_token(settings: Settings, lead_id: uuid.UUID) -> str:
    lifetime = dt.timedelta(days=settings.booking.link_days)
    return tokens.sign(tokens.jwt_secret(settings), tokens.BOOK, lead_id, lifetime)


def booking_url(settings: Settings, lead_id: uuid.UUID) -> str:
    """The clinic site's booking page with the lead's token; the page calls /api/booking/slots and /api/booking."""
    return f"{settings.clinic.booking_url}?{urlencode({'token': booking_token(settings, lead_id)})}"


def manage_token(settings: Settings, booking_id: uuid.UUID, starts_at: dt.datetime) -> str:
    """Valid until the change cut-off before the consultation (12 hours by default)."""
    cutoff = starts_at - dt.timedelta(hours=settings.booking.change_cutoff_hours)
    lifetime = max(cutoff - dt.datetime.now(dt.UTC), dt.timedelta(seconds=1))
    return tokens.sign(tokens.jwt_secret(settings), tokens.MANAGE_BOOKING, booking_id, lifetime)


def manage_urls(settings: Settings, booking_id: uuid.UUID, starts_at: dt.datetime) -> tuple[str, str]:
    """(cancel, reschedule) links on the clinic site; the pages call /api/booking/cancel and /reschedule."""
    query = urlencode({"token": manage_token(settings, booking_id, starts_at)})
    return f"{settings.clinic.booking_url}/cancel?{query}", f"{settings.clinic.booking_url}/reschedule?{query}"
