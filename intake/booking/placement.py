"""Placement: the one place a booking is made, under the lock that keeps a clinician from being double-booked.

No double booking, guaranteed by the database: the partial unique index on (clinician, start) of live
bookings refuses a second booking of the same start, and the clinician's row is locked
(`SELECT ... FOR UPDATE` on PostgreSQL) while their overlapping bookings are checked, which catches
consultations of different lengths that overlap without sharing a start.
"""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from intake.booking.free_slots import Asking, Availability, FreeSlots
from intake.booking.slots import Slot, clinicians_for, free_slots, is_free
from intake.db import dialect
from intake.db.base import new_id, utcnow
from intake.db.models import Booking, Lead, StaffMember
from intake.problems import Conflict, FieldProblem, InvalidFields, NotFound
from intake.settings import Settings
from intake.vocabulary import BookingStatus


class Placement:
    """Pick a free clinician and insert the booking, or say why not (409/422); the lead's rows, locked."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, free_slots: FreeSlots):
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._zone = ZoneInfo(settings.clinic.timezone)
        self._slots = free_slots

    def check_area(self, lead: Lead, location: str) -> None:
        if location == "in_home" and (lead.zip or "").strip() not in self._settings.booking.in_home_zips:
            raise InvalidFields(
                [
                    FieldProblem(
                        "location",
                        "In-home visits are offered only in our service area, and this ZIP code is outside it: "
                        "choose Boca Raton, Pompano Beach or a virtual consultation, or call "
                        f"{self._settings.clinic.phone}.",
                    )
                ]
            )

    def refusal(
        self,
        availability: Availability,
        free: list[Slot],
        *,
        location: str,
        starts_at: dt.datetime,
        now: dt.datetime,
        asking: Asking,
    ) -> Exception:
        """409 for a consultation time that exists but is taken (or held); 422 for one that never was."""
        ever = free_slots(
            location=location,
            rules=availability.rules,
            closures=availability.closures,
            bookings=[],
            timings=availability.timings,
            zone=self._zone,
            now=now,
            horizon=asking.horizon,
            min_notice=asking.min_notice,
            soon_priority=dt.timedelta(0),
            soon=True,
        )
        if any(s.starts_at == starts_at for s in ever):
            return Conflict(
                "That time is no longer available. Please choose another one.",
                next_slots=self._slots.next_slots(free, starts_at),
            )
        return InvalidFields(
            [
                FieldProblem(
                    "starts_at",
                    "This is not one of the consultation times offered at this location: choose one of the free slots.",
                )
            ]
        )

    # --- the one place a booking is made ----------------------------------------------------------

    async def place(
        self,
        session: AsyncSession,
        *,
        lead: Lead,
        location: str,
        starts_at: dt.datetime,
        asking: Asking,
        now: dt.datetime,
        booked_by: uuid.UUID | None,
        clinician_id: uuid.UUID | None = None,
        replacing: Booking | None = None,
    ) -> Booking:
        """Pick a free clinician for `starts_at` at `location` and insert the booking (flushed).

        With `replacing`, that booking is cancelled in the same transaction and the new one points back
        at it: a move is a new row, so it gets its own confirmation email and calendar entry.
        """
        availability = await self._slots.availability(
            session,
            location=location,
            now=now,
            horizon=asking.horizon,
            clinician_id=clinician_id,
            ignore=replacing.id if replacing is not None else None,
        )
        free = self._slots.free(availability, location=location, now=now, asking=asking)
        candidates = clinicians_for(free, starts_at, availability.bookings, self._zone)
        if replacing is not None:
            # Moving keeps the patient with the clinician they had, when that clinician is free.
            keep = replacing.staff_id
            candidates.sort(key=lambda s: s.staff_id != keep)
        if not candidates:
            raise self.refusal(availability, free, location=location, starts_at=starts_at, now=now, asking=asking)
        chosen: Slot | None = None
        for slot in candidates:
            await dialect.lock_row(session, StaffMember, slot.staff_id)
            # Read again under the lock: a booking committed since the slots were computed (of any
            # length, at any location) is seen now.
            current = await self._slots.busy(
                session,
                start=slot.starts_at - dt.timedelta(days=1),
                end=slot.ends_at + dt.timedelta(days=1),
                ignore=replacing.id if replacing is not None else None,
                staff_id=slot.staff_id,
            )
            if is_free(slot, current, (), availability.timings):
                chosen = slot
                break
        if chosen is None:
            raise Conflict(
                "That time was just taken. Please choose another one.",
                next_slots=self._slots.next_slots(free, starts_at),
            )
        if replacing is not None:
            replacing.status = BookingStatus.CANCELLED
            replacing.cancelled_at = now
            replacing.updated_at = now
            # Flushed first: the lead may hold only one live booking (a partial unique index).
            await session.flush()
        booking = Booking(
            id=new_id(),
            created_at=now,
            updated_at=now,
            lead_id=lead.id,
            staff_id=chosen.staff_id,
            location=location,
            starts_at=chosen.starts_at,
            ends_at=chosen.ends_at,
            status=BookingStatus.BOOKED,
            booked_by_id=booked_by,
            rescheduled_from_id=replacing.id if replacing is not None else None,
        )
        session.add(booking)
        await session.flush()
        return booking

    async def locked_lead(self, session: AsyncSession, lead_id: uuid.UUID) -> Lead:
        if not await dialect.lock_row(session, Lead, lead_id):
            raise NotFound("lead")
        return await session.get_one(Lead, lead_id)

    async def live_booking(self, session: AsyncSession, lead_id: uuid.UUID) -> Booking | None:
        stmt = select(Booking).where(Booking.lead_id == lead_id, Booking.status == BookingStatus.BOOKED).limit(1)
        return (await session.execute(stmt)).scalar_one_or_none()

    async def explain_clash(
        self, *, lead_id: uuid.UUID, location: str, starts_at: dt.datetime, asking: Asking | None, who: str
    ) -> Conflict:
        """A unique index refused the insert (a race we lost): say which, with fresh next slots."""
        now = utcnow()
        async with self._sessionmaker() as session:
            # A move replaces the live booking, so only a new booking can clash on the lead's index.
            if who != "move" and await self.live_booking(session, lead_id) is not None:
                return self.already_booked(who)
            lead = await session.get_one(Lead, lead_id)
            asking = asking or self._slots.for_patient(lead)
            availability = await self._slots.availability(session, location=location, now=now, horizon=asking.horizon)
        free = self._slots.free(availability, location=location, now=now, asking=asking)
        return Conflict(
            "That time was just taken. Please choose another one.", next_slots=self._slots.next_slots(free, starts_at)
        )

    def already_booked(self, who: str) -> Conflict:
        if who == "patient":
            return Conflict(
                "You already have a consultation booked. To change it, use the reschedule link in your "
                f"confirmation email, or call us at {self._settings.clinic.phone}."
            )
        return Conflict("This lead already has a live booking: move or cancel it instead.")

    async def lead_id_of(self, session: AsyncSession, booking_id: uuid.UUID) -> uuid.UUID:
        lead_id = (await session.execute(select(Booking.lead_id).where(Booking.id == booking_id))).scalar()
        if lead_id is None:
            raise NotFound("booking")
        return lead_id
