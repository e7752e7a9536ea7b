"""What a booking changes in the person's follow-up schedule, in the booking's own transaction."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from intake.db.models import Booking, Consent, Lead
from intake.leads import lifecycle
from intake.messaging.followups.rows import cancel_statement, next_follow_up_statement, schedule_statement, stopped_by
from intake.messaging.followups.schedule import Window, sequences

BookingEvent = Literal["booked", "moved", "cancelled", "attended", "no_show"]


async def booking_changed(
    session: AsyncSession, *, lead: Lead, booking: Booking, event: BookingEvent, window: Window, now: dt.datetime
) -> None:
    """Booking stops the booking reminders and the check-in; a live booking gets its 24-hour reminder;
    attending starts the thank-you."""
    if event in ("booked", "moved"):
        await session.execute(cancel_statement(lead.id, "booked", sequences_named=stopped_by("booked")))
        if await _may_follow_up(session, lead):
            stmt = schedule_statement(
                session, lead.id, sequences()["booked"], booking.starts_at, window, now, booking.id
            )
            if stmt is not None:
                await session.execute(stmt)
    elif event in ("cancelled", "no_show"):
        await session.execute(cancel_statement(lead.id, event, sequences_named=("booked",)))
    elif event == "attended":
        await session.execute(cancel_statement(lead.id, "attended", sequences_named=("booked",)))
        if await _may_follow_up(session, lead):
            stmt = schedule_statement(session, lead.id, sequences()["attended"], now, window, now, booking.id)
            if stmt is not None:
                await session.execute(stmt)
    await session.execute(next_follow_up_statement(lead.id))


async def _may_follow_up(session: AsyncSession, lead: Lead) -> bool:
    consent = (await session.execute(Consent.latest_of(lead.id))).scalar_one_or_none()
    return lifecycle.may_follow_up(lead, consent)


__all__ = ["BookingEvent", "booking_changed"]
