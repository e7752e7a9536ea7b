"""Staff bookings: what the front desk and clinicians do by phone, with the audit row of each change."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import msgspec
import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from intake.booking import follow_ups
from intake.booking.availability import aware, clinician
from intake.booking.free_slots import STAFF_HORIZON
from intake.booking.parts import BookingParts
from intake.booking.schemas import BookingOut, BookingPatch, ScheduleOut, StaffBookingIn, StaffSlotOut, StaffSlotsOut
from intake.booking.slots import free_slots
from intake.db.base import utcnow
from intake.db.models import Booking, Lead, StaffMember
from intake.messaging.publishing.publication import Publication
from intake.messaging.publishing.publisher import BackgroundPublisher
from intake.problems import Conflict, FieldProblem, InvalidFields, NotFound
from intake.settings import Settings
from intake.staff import audit
from intake.staff.schemas import StaffRef
from intake.vocabulary import OPEN_STATUSES, BookingStatus

log = structlog.get_logger(__name__)

SCHEDULE_MAX_DAYS = 62


class StaffBooking(BookingParts):
    """Staff booking by phone: free times per clinician, book, move, set the status, and the schedule."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, publisher: BackgroundPublisher
    ):
        super().__init__(sessionmaker, settings, publisher)
        self._zone = ZoneInfo(settings.clinic.timezone)

    async def slots_for_staff(
        self,
        *,
        lead_id: uuid.UUID,
        location: str | None,
        clinician_id: uuid.UUID | None,
        at_from: dt.datetime | None,
    ) -> StaffSlotsOut:
        """Every free time for a lead, per clinician: no soon hold and no notice period, over the booking
        horizon's length from `from` (default now), up to STAFF_HORIZON ahead."""
        now = utcnow()
        start = max(now, aware(at_from, "from")) if at_from is not None else now
        if start >= now + STAFF_HORIZON:
            raise InvalidFields(
                [FieldProblem("from", f"Consultations can be booked up to {STAFF_HORIZON.days} days ahead.")]
            )
        window = min(dt.timedelta(days=self._settings.booking.horizon_days), now + STAFF_HORIZON - start)
        async with self._sessionmaker() as session:
            lead = await session.get(Lead, lead_id)
            if lead is None:
                raise NotFound("lead")
            place = location or lead.location
            self._placement.check_area(lead, place)
            if clinician_id is not None:
                await clinician(session, clinician_id, "clinician_id")
            availability = await self._slots.availability(
                session, location=place, now=start, horizon=window, clinician_id=clinician_id
            )
            names = dict(
                (await session.execute(select(StaffMember.id, StaffMember.name).where(StaffMember.role == "clinician")))
                .tuples()
                .all()
            )
        free = free_slots(
            location=place,
            rules=availability.rules,
            closures=availability.closures,
            bookings=availability.bookings,
            timings=availability.timings,
            zone=self._zone,
            now=start,
            horizon=window,
            min_notice=dt.timedelta(0),
            soon_priority=dt.timedelta(0),
            soon=True,
        )
        grouped: dict[dt.datetime, StaffSlotOut] = {}
        for slot in free:
            row = grouped.setdefault(slot.starts_at, StaffSlotOut(slot.starts_at, slot.ends_at, slot.location, []))
            row.clinicians.append(StaffRef(id=slot.staff_id, name=names.get(slot.staff_id, "")))
        return StaffSlotsOut(
            location=place,
            address=self._views.address(place),
            time_zone=self._settings.clinic.timezone,
            slots=list(grouped.values()),
        )

    async def book_for_lead(self, *, lead_id: uuid.UUID, data: StaffBookingIn, actor: StaffMember) -> BookingOut:
        starts_at = aware(data.starts_at, "starts_at")
        now = utcnow()
        if starts_at <= now:
            raise InvalidFields([FieldProblem("starts_at", "A consultation must start in the future.")])
        location = ""
        try:
            async with self._sessionmaker() as session, session.begin():
                lead = await self._placement.locked_lead(session, lead_id)
                location = data.location or lead.location
                if data.clinician_id is not None:
                    await clinician(session, data.clinician_id, "clinician_id")
                if lead.status not in OPEN_STATUSES:
                    raise Conflict(f"The lead is {lead.status}: only an open lead can be booked.")
                booking, publications = await self._book(
                    session,
                    lead,
                    location=location,
                    starts_at=starts_at,
                    asking=self._slots.for_staff(),
                    now=now,
                    by=actor.id,
                    clinician_id=data.clinician_id,
                )
                audit.record(
                    session,
                    actor_id=actor.id,
                    action="booking.create",
                    lead_id=lead.id,
                    target_staff_id=booking.staff_id,
                    fields=["starts_at", "location", *(["clinician_id"] if data.clinician_id else [])],
                )
                body = await self._views.staff_view(session, booking)
        except IntegrityError:
            raise await self._placement.explain_clash(
                lead_id=lead_id, location=location, starts_at=starts_at, asking=self._slots.for_staff(), who="staff"
            ) from None
        log.info("booking.booked", booking_id=str(booking.id), lead_id=str(lead_id), by="staff")
        return self._changes.committed(body, publications)

    async def change(self, *, booking_id: uuid.UUID, patch: BookingPatch, actor: StaffMember) -> BookingOut:
        """Move ({starts_at, clinician_id?}) or set the status (cancelled, attended, no_show)."""
        changed = [name for name in patch.__struct_fields__ if getattr(patch, name) is not msgspec.UNSET]
        if not changed:
            raise InvalidFields([FieldProblem("body", "Nothing to change: send starts_at or status.")])
        if patch.status is not msgspec.UNSET and len(changed) > 1:
            raise InvalidFields([FieldProblem("status", "Change either the time or the status, not both at once.")])
        starts_at = aware(patch.starts_at, "starts_at") if patch.starts_at is not msgspec.UNSET else None
        now = utcnow()
        lead_id = uuid.UUID(int=0)
        location = ""
        try:
            async with self._sessionmaker() as session, session.begin():
                lead_id = await self._placement.lead_id_of(session, booking_id)
                lead = await self._placement.locked_lead(session, lead_id)
                booking = await session.get_one(Booking, booking_id)
                location = booking.location
                if patch.status is not msgspec.UNSET:
                    publications = await self._set_status(session, lead, booking, patch.status, actor, now)
                    body = await self._views.staff_view(session, booking)
                else:
                    clinician_id = patch.clinician_id if patch.clinician_id is not msgspec.UNSET else None
                    moved = await self._move(session, lead, booking, starts_at, clinician_id, actor, now)
                    publications = moved[1]
                    body = await self._views.staff_view(session, moved[0])
        except IntegrityError:
            raise await self._placement.explain_clash(
                lead_id=lead_id,
                location=location,
                starts_at=starts_at or now,
                asking=self._slots.for_staff(),
                who="move",
            ) from None
        return self._changes.committed(body, publications)

    async def _set_status(
        self, session: AsyncSession, lead: Lead, booking: Booking, target: str, actor: StaffMember, now: dt.datetime
    ) -> tuple[Publication, ...]:
        if booking.status == target:
            return ()  # said twice (a double click): nothing more happens
        if booking.status != BookingStatus.BOOKED:
            raise Conflict(f"The booking is {booking.status}; it cannot become {target}.", status=booking.status)
        if target in (BookingStatus.ATTENDED, BookingStatus.NO_SHOW) and now < booking.starts_at:
            raise Conflict(f"A consultation can be marked {target} once it has started.")
        booking.status, booking.updated_at = target, now
        if target == BookingStatus.CANCELLED:
            booking.cancelled_at = now
        event: follow_ups.BookingEvent = (
            "cancelled"
            if target == BookingStatus.CANCELLED
            else "attended"
            if target == BookingStatus.ATTENDED
            else "no_show"
        )
        publications = await self._changes.after_change(
            session, lead=lead, booking=booking, event=event, actor_id=actor.id, now=now
        )
        actions: dict[str, str] = {
            BookingStatus.CANCELLED: "booking.cancel",
            BookingStatus.ATTENDED: "booking.attended",
            BookingStatus.NO_SHOW: "booking.no_show",
        }
        action = actions[target]
        audit.record(session, actor_id=actor.id, action=action, lead_id=lead.id, fields=["status"])
        log.info("booking.status", booking_id=str(booking.id), status=target)
        return publications

    async def _move(
        self,
        session: AsyncSession,
        lead: Lead,
        booking: Booking,
        starts_at: dt.datetime | None,
        clinician_id: uuid.UUID | None,
        actor: StaffMember,
        now: dt.datetime,
    ) -> tuple[Booking, tuple[Publication, ...]]:
        if booking.status != BookingStatus.BOOKED:
            raise Conflict(f"The booking is {booking.status}: only a live booking can be moved.", status=booking.status)
        target = starts_at or booking.starts_at
        if target <= now:
            raise InvalidFields([FieldProblem("starts_at", "A consultation must start in the future.")])
        if clinician_id is not None:
            await clinician(session, clinician_id, "clinician_id")
        if target == booking.starts_at and clinician_id in (None, booking.staff_id):
            return booking, ()  # already there
        moved = await self._placement.place(
            session,
            lead=lead,
            location=booking.location,
            starts_at=target,
            asking=self._slots.for_staff(),
            now=now,
            booked_by=actor.id,
            clinician_id=clinician_id,
            replacing=booking,
        )
        publications = await self._changes.after_change(
            session, lead=lead, booking=moved, event="moved", actor_id=actor.id, now=now
        )
        audit.record(
            session,
            actor_id=actor.id,
            action="booking.move",
            lead_id=lead.id,
            target_staff_id=moved.staff_id,
            fields=["starts_at", *(["clinician_id"] if clinician_id else [])],
        )
        log.info("booking.moved", booking_id=str(moved.id), from_id=str(booking.id), by="staff")
        return moved, publications

    async def schedule(
        self,
        *,
        at_from: dt.datetime | None,
        at_to: dt.datetime | None,
        clinician_id: uuid.UUID | None,
        location: str | None,
        status: str | None,
        actor: StaffMember,
    ) -> ScheduleOut:
        """Bookings starting in [from, to) (default: this clinic day and the six after), cancelled ones
        only when asked for by status."""
        if at_from is None:
            today = utcnow().astimezone(self._zone).date()
            start = dt.datetime.combine(today, dt.time(0), tzinfo=self._zone).astimezone(dt.UTC)
        else:
            start = aware(at_from, "from")
        end = aware(at_to, "to") if at_to is not None else start + dt.timedelta(days=7)
        if end <= start:
            raise InvalidFields([FieldProblem("to", "`to` must be after `from`.")])
        if end - start > dt.timedelta(days=SCHEDULE_MAX_DAYS):
            raise InvalidFields([FieldProblem("to", f"Ask for at most {SCHEDULE_MAX_DAYS} days at a time.")])
        clinician_row, booker = aliased(StaffMember), aliased(StaffMember)
        stmt = (
            select(Booking, Lead.first_name, Lead.last_name, clinician_row.name, booker.name)
            .join(Lead, Lead.id == Booking.lead_id)
            .join(clinician_row, clinician_row.id == Booking.staff_id)
            .outerjoin(booker, booker.id == Booking.booked_by_id)
            .where(Booking.starts_at >= start, Booking.starts_at < end)
        )
        if clinician_id is not None:
            stmt = stmt.where(Booking.staff_id == clinician_id)
        if location is not None:
            stmt = stmt.where(Booking.location == location)
        stmt = stmt.where(Booking.status == status) if status else stmt.where(Booking.status != BookingStatus.CANCELLED)
        async with self._sessionmaker() as session, session.begin():
            rows = (await session.execute(stmt.order_by(Booking.starts_at, Booking.id))).tuples().all()
            audit.record(
                session,
                actor_id=actor.id,
                action="booking.list",
                fields=[
                    name
                    for name, value in (
                        ("from", at_from),
                        ("to", at_to),
                        ("clinician_id", clinician_id),
                        ("location", location),
                        ("status", status),
                    )
                    if value is not None
                ],
            )
        return ScheduleOut(items=[self._views.row_out(b, f"{first} {last}", c, by) for b, first, last, c, by in rows])


__all__ = ["StaffBooking"]
