"""What both booking services are made of: free slots, placement, views and what follows a change."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from intake.booking.changes import Changes
from intake.booking.free_slots import Asking, FreeSlots
from intake.booking.placement import Placement
from intake.booking.views import Views
from intake.db.models import Booking, Lead
from intake.messaging.publishing.publication import Publication
from intake.messaging.publishing.publisher import BackgroundPublisher
from intake.settings import Settings


class BookingParts:
    """The patient's and the staff's booking services share these; each service is one of these plus its flows."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, publisher: BackgroundPublisher
    ):
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._slots = FreeSlots(settings)
        self._placement = Placement(sessionmaker, settings, self._slots)
        self._views = Views(settings)
        self._changes = Changes(settings, publisher)

    async def _book(
        self,
        session: AsyncSession,
        lead: Lead,
        *,
        location: str,
        starts_at: dt.datetime,
        asking: Asking,
        now: dt.datetime,
        by: uuid.UUID | None,
        clinician_id: uuid.UUID | None = None,
    ) -> tuple[Booking, tuple[Publication, ...]]:
        """A new booking for an open lead that has none (`by`: the staff member, or None for the patient), and
        everything that follows from it; the caller turns an IntegrityError (a slot just taken) into a 409."""
        self._placement.check_area(lead, location)
        if await self._placement.live_booking(session, lead.id) is not None:
            raise self._placement.already_booked("patient" if by is None else "staff")
        booking = await self._placement.place(
            session,
            lead=lead,
            location=location,
            starts_at=starts_at,
            asking=asking,
            now=now,
            booked_by=by,
            clinician_id=clinician_id,
        )
        publications = await self._changes.after_change(
            session, lead=lead, booking=booking, event="booked", actor_id=by, now=now
        )
        return booking, publications


__all__ = ["BookingParts"]
