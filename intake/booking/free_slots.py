"""The availability query: free consultation times from clinicians' weekly hours, exceptions and live bookings."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from intake.booking.slots import Busy, Closure, Slot, Timing, WeeklyHours, free_slots, offers
from intake.booking.views import slot_dicts
from intake.db.models import AvailabilityException, AvailabilityRule, Booking, Lead, LocationSettings, StaffMember
from intake.screening import Tier
from intake.settings import Settings
from intake.vocabulary import BookingStatus

NEXT_SLOTS = 5
"""How many other free starts a 409 for a taken slot suggests."""
STAFF_HORIZON = dt.timedelta(days=90)
"""Staff book by phone further ahead than the two weeks the patient link offers."""
_SOON_RANK = Tier.SOON.rank


@dataclass(frozen=True, slots=True)
class Asking:
    """Who is booking decides what they are offered: patients get notice, horizon and the soon hold."""

    horizon: dt.timedelta
    min_notice: dt.timedelta
    soon_priority: dt.timedelta
    soon: bool


@dataclass(frozen=True, slots=True)
class Availability:
    rules: list[WeeklyHours]
    closures: list[Closure]
    bookings: list[Busy]
    timings: dict[str, Timing]


class FreeSlots:
    """Free consultation times: read what they are cut from, cut them, and say who is asking."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._zone = ZoneInfo(settings.clinic.timezone)

    # --- who is asking ------------------------------------------------------------------------------

    def for_patient(self, lead: Lead) -> Asking:
        booking = self._settings.booking
        return Asking(
            horizon=dt.timedelta(days=booking.horizon_days),
            min_notice=dt.timedelta(hours=booking.min_notice_hours),
            soon_priority=dt.timedelta(hours=booking.soon_priority_hours),
            # An urgent lead who books rather than seeking care elsewhere is no less pressing than a soon one.
            soon=lead.tier_rank <= _SOON_RANK,
        )

    @staticmethod
    def for_staff() -> Asking:
        return Asking(horizon=STAFF_HORIZON, min_notice=dt.timedelta(0), soon_priority=dt.timedelta(0), soon=True)

    # --- reading availability ---------------------------------------------------------------------

    async def availability(
        self,
        session: AsyncSession,
        *,
        location: str,
        now: dt.datetime,
        horizon: dt.timedelta,
        clinician_id: uuid.UUID | None = None,
        ignore: uuid.UUID | None = None,
    ) -> Availability:
        """What the slots are cut from, for the window around [now, now + horizon]; `ignore` is the
        booking being moved (it must not block its own new time)."""
        start, end = now - dt.timedelta(days=1), now + horizon + dt.timedelta(days=1)
        rules_stmt = (
            select(AvailabilityRule)
            .join(StaffMember, StaffMember.id == AvailabilityRule.staff_id)
            .where(
                AvailabilityRule.location == location,
                StaffMember.role == "clinician",
                StaffMember.disabled.is_(False),
            )
        )
        if clinician_id is not None:
            rules_stmt = rules_stmt.where(AvailabilityRule.staff_id == clinician_id)
        rules = [
            WeeklyHours(r.staff_id, r.location, r.weekday, r.start_time, r.end_time)
            for r in (await session.execute(rules_stmt)).scalars()
        ]
        closures = [
            Closure(e.starts_at, e.ends_at, e.staff_id, e.location)
            for e in (
                await session.execute(
                    select(AvailabilityException).where(
                        AvailabilityException.ends_at > start, AvailabilityException.starts_at < end
                    )
                )
            ).scalars()
        ]
        bookings = await self.busy(session, start=start, end=end, ignore=ignore)
        timings = {
            row.location: Timing(row.slot_minutes, row.buffer_minutes)
            for row in (await session.execute(select(LocationSettings))).scalars()
        }
        return Availability(rules, closures, bookings, timings)

    @staticmethod
    async def busy(
        session: AsyncSession,
        *,
        start: dt.datetime,
        end: dt.datetime,
        ignore: uuid.UUID | None,
        staff_id: uuid.UUID | None = None,
    ) -> list[Busy]:
        stmt = select(Booking.staff_id, Booking.location, Booking.starts_at, Booking.ends_at).where(
            Booking.status == BookingStatus.BOOKED, Booking.ends_at > start, Booking.starts_at < end
        )
        if ignore is not None:
            stmt = stmt.where(Booking.id != ignore)
        if staff_id is not None:
            stmt = stmt.where(Booking.staff_id == staff_id)
        return [Busy(*row) for row in (await session.execute(stmt)).tuples()]

    def free(self, availability: Availability, *, location: str, now: dt.datetime, asking: Asking) -> list[Slot]:
        return free_slots(
            location=location,
            rules=availability.rules,
            closures=availability.closures,
            bookings=availability.bookings,
            timings=availability.timings,
            zone=self._zone,
            now=now,
            horizon=asking.horizon,
            min_notice=asking.min_notice,
            soon_priority=asking.soon_priority,
            soon=asking.soon,
        )

    @staticmethod
    def next_slots(free: Sequence[Slot], after: dt.datetime) -> list[dict[str, Any]]:
        """The next free starts after the one asked for (the earliest ones if none are later)."""
        choices = [o for o in offers(free) if o.starts_at != after]
        later = [o for o in choices if o.starts_at > after]
        return slot_dicts((later or choices)[:NEXT_SLOTS])
