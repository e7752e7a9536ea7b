"""What happens after a booking changes: the lead's status, the follow-up schedule, the email to the person.

Each change (book, move, cancel, attended, no-show) commits with everything that follows from it: the
lead's status and its event, the follow-up schedule (`follow_ups.booking_changed`), the confirmation
email's delivery row and, for staff, the audit row. The confirmation is published after commit.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from intake.booking import follow_ups
from intake.booking.schemas import BookingOut, PatientBookingOut
from intake.db.models import Booking, Lead
from intake.leads import lifecycle
from intake.messaging import deliveries, kinds
from intake.messaging.followups.schedule import Window
from intake.messaging.publishing.publication import Publication
from intake.messaging.publishing.publisher import BackgroundPublisher
from intake.settings import Settings
from intake.vocabulary import LeadStatus

_Body = TypeVar("_Body", PatientBookingOut, BookingOut)


class Changes:
    """What follows a booking's change in its transaction, and the email's publication after commit."""

    def __init__(self, settings: Settings, publisher: BackgroundPublisher):
        self._publisher = publisher
        self._window = Window.parse(settings.clinic.timezone, settings.followups.sending_window)

    async def after_change(
        self,
        session: AsyncSession,
        *,
        lead: Lead,
        booking: Booking,
        event: follow_ups.BookingEvent,
        actor_id: uuid.UUID | None,
        now: dt.datetime,
    ) -> tuple[Publication, ...]:
        """The lead's status, the follow-up schedule and, for a new time or a cancellation, the email
        that updates the person's calendar."""
        new, contacted, booked = LeadStatus.NEW, LeadStatus.CONTACTED, LeadStatus.CONSULT_BOOKED
        if event in ("booked", "moved"):
            await lifecycle.follow(session, lead, booked, only_from=(new, contacted), actor_id=actor_id, now=now)
        elif event == "attended":
            await lifecycle.follow(
                session, lead, LeadStatus.CONSULT_DONE, only_from=(new, contacted, booked), actor_id=actor_id, now=now
            )
        else:
            await lifecycle.follow(session, lead, contacted, only_from=(booked,), actor_id=actor_id, now=now)
        lead.updated_at = now
        await follow_ups.booking_changed(session, lead=lead, booking=booking, event=event, window=self._window, now=now)
        if event in ("booked", "moved"):
            kind = kinds.KIND_BOOKING_CONFIRMATION
        elif event == "cancelled":
            kind = kinds.KIND_BOOKING_CANCELLATION
        else:
            return ()
        row = deliveries.new_delivery(
            lead_id=lead.id, kind=kind, about=booking.id, queue=kinds.DEFAULT_QUEUE, now=now, ref_id=booking.id
        )
        added = (await session.execute(deliveries.insert_new(session, [row]))).all()
        return tuple(deliveries.publication(found.id, found.queue) for found in added)

    def committed(self, body: _Body, publications: tuple[Publication, ...]) -> _Body:
        """The change is committed: its email goes to the broker in the background, so a broker that is
        down only delays it (the sweep publishes it again)."""
        self._publisher.publish_soon(publications)
        return body
