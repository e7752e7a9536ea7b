"""Booking the free consultation: patients through their signed links, staff by phone; one transaction each.

Each change (book, move, cancel, attended, no-show) commits with everything that follows from it: the
lead's status and its event, the follow-up schedule (`follow_ups.booking_changed`), the confirmation
email's delivery row and, for staff, the audit row. The confirmation is published after commit.

No double booking, guaranteed by the database: the partial unique index on (clinician, start) of live
bookings refuses a second booking of the same start, and the clinician's row is locked
(`SELECT ... FOR UPDATE` on PostgreSQL) while their overlapping bookings are checked, which catches
consultations of different lengths that overlap without sharing a start.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

import jwt
import msgspec
import structlog
from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from intake import tokens
from intake.booking import follow_ups, links
from intake.booking.availability import aware, clinician
from intake.booking.schemas import (
    BookingOut,
    BookingPatch,
    PatientBookingOut,
    ScheduleOut,
    SlotOut,
    SlotsOut,
    StaffBookingIn,
    StaffSlotOut,
    StaffSlotsOut,
)
from intake.booking.slots import (
    Busy,
    Closure,
    Offer,
    Slot,
    Timing,
    WeeklyHours,
    clinicians_for,
    free_slots,
    is_free,
    offers,
)
from intake.db.base import new_id, utcnow
from intake.db.models import (
    AvailabilityException,
    AvailabilityRule,
    Booking,
    Lead,
    LocationSettings,
    StaffMember,
)
from intake.leads import lifecycle
from intake.messaging import deliveries, kinds
from intake.messaging.followups.schedule import Window
from intake.messaging.publishing.publication import Publication
from intake.messaging.publishing.publisher import BackgroundPublisher
from intake.problems import Conflict, FieldProblem, InvalidFields, NotFound
from intake.screening import Tier
from intake.settings import Settings
from intake.staff import audit
from intake.staff.schemas import StaffRef
from intake.vocabulary import OPEN_STATUSES, LeadStatus

log = structlog.get_logger(__name__)

NEXT_SLOTS = 5
"""How many other free starts a 409 for a taken slot suggests."""
STAFF_HORIZON = dt.timedelta(days=90)
"""Staff book by phone further ahead than the two weeks the patient link offers."""
SCHEDULE_MAX_DAYS = 62
_SOON_RANK = Tier.SOON.rank


class LinkInvalid(Exception):
    """A booking or manage link that was tampered with, made for something else, or has expired (401)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


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


async def lock(session: AsyncSession, model: type[Lead] | type[StaffMember], row_id: uuid.UUID) -> bool:
    """Hold the row until commit; False if there is none.

    PostgreSQL: `SELECT ... FOR UPDATE`. SQLite locks the whole database, and only from a transaction's
    first write: an UPDATE that changes nothing takes that lock now, so what is read next cannot change
    under us (a plain read first would let another writer slip in between).
    """
    if session.get_bind().dialect.name == "postgresql":
        found = await session.execute(select(model.id).where(model.id == row_id).with_for_update())
        return found.first() is not None
    result = await session.execute(
        update(model)
        .where(model.id == row_id)
        .values(updated_at=model.updated_at)
        .execution_options(synchronize_session=False)
    )
    return cast("CursorResult[Any]", result).rowcount > 0


_Body = TypeVar("_Body", PatientBookingOut, BookingOut)


class BookingService:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, publisher: BackgroundPublisher
    ):
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._publisher = publisher
        self._zone = ZoneInfo(settings.clinic.timezone)
        self._window = Window.parse(settings.clinic.timezone, settings.followups.sending_window)

    # --- who is asking ------------------------------------------------------------------------------

    def _patient(self, lead: Lead) -> Asking:
        booking = self._settings.booking
        return Asking(
            horizon=dt.timedelta(days=booking.horizon_days),
            min_notice=dt.timedelta(hours=booking.min_notice_hours),
            soon_priority=dt.timedelta(hours=booking.soon_priority_hours),
            # An urgent lead who books rather than seeking care elsewhere is no less pressing than a soon one.
            soon=lead.tier_rank <= _SOON_RANK,
        )

    @staticmethod
    def _staff() -> Asking:
        return Asking(horizon=STAFF_HORIZON, min_notice=dt.timedelta(0), soon_priority=dt.timedelta(0), soon=True)

    def address(self, location: str) -> str | None:
        return self._settings.booking.addresses.get(location)

    def _check_area(self, lead: Lead, location: str) -> None:
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

    # --- tokens -----------------------------------------------------------------------------------

    def _lead_of(self, token: str) -> uuid.UUID:
        try:
            return tokens.verify(tokens.jwt_secret(self._settings), tokens.BOOK, token)
        except tokens.BadToken:
            raise LinkInvalid(
                "This booking link is not valid or has expired. Please call us at "
                f"{self._settings.clinic.phone} and we will book your consultation."
            ) from None

    def _booking_of(self, token: str) -> tuple[uuid.UUID, bool]:
        """The booking a manage token names, and whether the token has expired.

        A manage token expires at the change cut-off. An expired one that is otherwise genuine still
        names the booking, so that the answer can be "call the clinic" rather than "bad link".
        """
        secret = tokens.jwt_secret(self._settings)
        try:
            return tokens.verify(secret, tokens.MANAGE_BOOKING, token), False
        except tokens.BadToken:
            pass
        try:
            claims = jwt.decode(
                token, secret, algorithms=["HS256"], audience=tokens.MANAGE_BOOKING, options={"verify_exp": False}
            )
            return uuid.UUID(str(claims["sub"])), True
        except (jwt.PyJWTError, KeyError, ValueError):
            raise LinkInvalid(
                f"This link is not valid. Please call us at {self._settings.clinic.phone} to change your booking."
            ) from None

    # --- reading availability ---------------------------------------------------------------------

    async def _availability(
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
        bookings = await self._busy(session, start=start, end=end, ignore=ignore)
        timings = {
            row.location: Timing(row.slot_minutes, row.buffer_minutes)
            for row in (await session.execute(select(LocationSettings))).scalars()
        }
        return Availability(rules, closures, bookings, timings)

    @staticmethod
    async def _busy(
        session: AsyncSession,
        *,
        start: dt.datetime,
        end: dt.datetime,
        ignore: uuid.UUID | None,
        staff_id: uuid.UUID | None = None,
    ) -> list[Busy]:
        stmt = select(Booking.staff_id, Booking.location, Booking.starts_at, Booking.ends_at).where(
            Booking.status == "booked", Booking.ends_at > start, Booking.starts_at < end
        )
        if ignore is not None:
            stmt = stmt.where(Booking.id != ignore)
        if staff_id is not None:
            stmt = stmt.where(Booking.staff_id == staff_id)
        return [Busy(*row) for row in (await session.execute(stmt)).tuples()]

    def _free(self, availability: Availability, *, location: str, now: dt.datetime, asking: Asking) -> list[Slot]:
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
    def _next_slots(free: Sequence[Slot], after: dt.datetime) -> list[dict[str, Any]]:
        """The next free starts after the one asked for (the earliest ones if none are later)."""
        choices = [o for o in offers(free) if o.starts_at != after]
        later = [o for o in choices if o.starts_at > after]
        return _slot_dicts((later or choices)[:NEXT_SLOTS])

    def _refusal(
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
                next_slots=self._next_slots(free, starts_at),
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

    async def _place(
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
        availability = await self._availability(
            session,
            location=location,
            now=now,
            horizon=asking.horizon,
            clinician_id=clinician_id,
            ignore=replacing.id if replacing is not None else None,
        )
        free = self._free(availability, location=location, now=now, asking=asking)
        candidates = clinicians_for(free, starts_at, availability.bookings, self._zone)
        if replacing is not None:
            # Moving keeps the patient with the clinician they had, when that clinician is free.
            keep = replacing.staff_id
            candidates.sort(key=lambda s: s.staff_id != keep)
        if not candidates:
            raise self._refusal(availability, free, location=location, starts_at=starts_at, now=now, asking=asking)
        chosen: Slot | None = None
        for slot in candidates:
            await lock(session, StaffMember, slot.staff_id)
            # Read again under the lock: a booking committed since the slots were computed (of any
            # length, at any location) is seen now.
            current = await self._busy(
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
                "That time was just taken. Please choose another one.", next_slots=self._next_slots(free, starts_at)
            )
        if replacing is not None:
            replacing.status = "cancelled"
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
            status="booked",
            booked_by_id=booked_by,
            rescheduled_from_id=replacing.id if replacing is not None else None,
        )
        session.add(booking)
        await session.flush()
        return booking

    async def _after_change(
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

    async def _locked_lead(self, session: AsyncSession, lead_id: uuid.UUID) -> Lead:
        if not await lock(session, Lead, lead_id):
            raise NotFound("lead")
        return await session.get_one(Lead, lead_id)

    async def _live_booking(self, session: AsyncSession, lead_id: uuid.UUID) -> Booking | None:
        stmt = select(Booking).where(Booking.lead_id == lead_id, Booking.status == "booked").limit(1)
        return (await session.execute(stmt)).scalar_one_or_none()

    async def _explain_clash(
        self, *, lead_id: uuid.UUID, location: str, starts_at: dt.datetime, asking: Asking | None, who: str
    ) -> Conflict:
        """A unique index refused the insert (a race we lost): say which, with fresh next slots."""
        now = utcnow()
        async with self._sessionmaker() as session:
            # A move replaces the live booking, so only a new booking can clash on the lead's index.
            if who != "move" and await self._live_booking(session, lead_id) is not None:
                return self._already_booked(who)
            lead = await session.get_one(Lead, lead_id)
            asking = asking or self._patient(lead)
            availability = await self._availability(session, location=location, now=now, horizon=asking.horizon)
        free = self._free(availability, location=location, now=now, asking=asking)
        return Conflict(
            "That time was just taken. Please choose another one.", next_slots=self._next_slots(free, starts_at)
        )

    def _already_booked(self, who: str) -> Conflict:
        if who == "patient":
            return Conflict(
                "You already have a consultation booked. To change it, use the reschedule link in your "
                f"confirmation email, or call us at {self._settings.clinic.phone}."
            )
        return Conflict("This lead already has a live booking: move or cancel it instead.")

    # --- patients -----------------------------------------------------------------------------------

    async def slots_for_link(self, *, token: str) -> SlotsOut:
        """Free times for the booking link's person at their location; with a confirmation email's manage
        token (the reschedule page), the times that booking may move to (its own time left out)."""
        secret = tokens.jwt_secret(self._settings)
        booking_id: uuid.UUID | None = None
        try:
            lead_id = tokens.verify(secret, tokens.BOOK, token)
        except tokens.BadToken:
            try:
                booking_id = tokens.verify(secret, tokens.MANAGE_BOOKING, token)
            except tokens.BadToken:
                lead_id = self._lead_of(token)  # raises the bad-link answer
        now = utcnow()
        moving: Booking | None = None
        async with self._sessionmaker() as session:
            if booking_id is not None:
                moving = await self._current(session, booking_id)
                lead_id = moving.lead_id
            lead = await session.get(Lead, lead_id)
            if lead is None:
                raise NotFound("lead")
            location = moving.location if moving is not None else lead.location
            self._check_area(lead, location)
            asking = self._patient(lead)
            live = moving if moving is not None and moving.status == "booked" else None
            availability = await self._availability(
                session, location=location, now=now, horizon=asking.horizon, ignore=live.id if live else None
            )
        free = self._free(availability, location=location, now=now, asking=asking)
        return SlotsOut(
            location=location,
            address=self.address(location),
            time_zone=self._settings.clinic.timezone,
            slots=[
                SlotOut(o.starts_at, o.ends_at, o.location)
                for o in offers(free)
                if live is None or o.starts_at != live.starts_at
            ],
        )

    async def book_by_link(self, *, token: str, starts_at: dt.datetime) -> PatientBookingOut:
        lead_id = self._lead_of(token)
        starts_at = aware(starts_at, "starts_at")
        now = utcnow()
        location = ""
        try:
            async with self._sessionmaker() as session, session.begin():
                lead = await self._locked_lead(session, lead_id)
                location = lead.location
                if lead.status not in OPEN_STATUSES:
                    raise Conflict(
                        f"Please call us at {self._settings.clinic.phone} to book your consultation.",
                        phone=self._settings.clinic.phone,
                    )
                self._check_area(lead, location)
                if await self._live_booking(session, lead.id) is not None:
                    raise self._already_booked("patient")
                booking = await self._place(
                    session,
                    lead=lead,
                    location=location,
                    starts_at=starts_at,
                    asking=self._patient(lead),
                    now=now,
                    booked_by=None,
                )
                publications = await self._after_change(
                    session, lead=lead, booking=booking, event="booked", actor_id=None, now=now
                )
                body = await self._patient_view(session, booking, now)
        except IntegrityError:
            raise await self._explain_clash(
                lead_id=lead_id, location=location, starts_at=starts_at, asking=None, who="patient"
            ) from None
        log.info("booking.booked", booking_id=str(booking.id), lead_id=str(lead_id), by="patient")
        return self._committed(body, publications)

    async def manage_view(self, *, token: str) -> PatientBookingOut:
        booking_id, expired = self._booking_of(token)
        now = utcnow()
        async with self._sessionmaker() as session:
            booking = await self._current(session, booking_id)
            self._refuse_stale(booking, expired, now)
            return await self._patient_view(session, booking, now)

    async def cancel_by_link(self, *, token: str) -> PatientBookingOut:
        """Cancelling twice is fine: the second time answers with the cancelled booking."""
        booking_id, expired = self._booking_of(token)
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            lead = await self._locked_lead(session, await self._lead_id_of(session, booking_id))
            booking = await self._current(session, booking_id)
            self._refuse_stale(booking, expired, now)
            if booking.status == "cancelled":
                return await self._patient_view(session, booking, now)
            self._check_changeable(booking, now)
            booking.status, booking.cancelled_at, booking.updated_at = "cancelled", now, now
            publications = await self._after_change(
                session, lead=lead, booking=booking, event="cancelled", actor_id=None, now=now
            )
            body = await self._patient_view(session, booking, now)
        log.info("booking.cancelled", booking_id=str(booking.id), by="patient")
        return self._committed(body, publications)

    async def reschedule_by_link(self, *, token: str, starts_at: dt.datetime) -> PatientBookingOut:
        """A new time: a new booking (and confirmation); asking again for the same time changes nothing."""
        booking_id, expired = self._booking_of(token)
        starts_at = aware(starts_at, "starts_at")
        now = utcnow()
        lead_id = uuid.UUID(int=0)
        location = ""
        try:
            async with self._sessionmaker() as session, session.begin():
                lead_id = await self._lead_id_of(session, booking_id)
                lead = await self._locked_lead(session, lead_id)
                booking = await self._current(session, booking_id)
                self._refuse_stale(booking, expired, now)
                location = booking.location
                if booking.status == "booked" and booking.starts_at == starts_at:
                    return await self._patient_view(session, booking, now)
                if booking.status == "cancelled":
                    raise Conflict(
                        "This consultation was cancelled. Book a new one with your booking link.",
                        booking_url=links.booking_url(self._settings, lead.id),
                    )
                self._check_changeable(booking, now)
                moved = await self._place(
                    session,
                    lead=lead,
                    location=location,
                    starts_at=starts_at,
                    asking=self._patient(lead),
                    now=now,
                    booked_by=None,
                    replacing=booking,
                )
                publications = await self._after_change(
                    session, lead=lead, booking=moved, event="moved", actor_id=None, now=now
                )
                body = await self._patient_view(session, moved, now)
        except IntegrityError:
            raise await self._explain_clash(
                lead_id=lead_id, location=location, starts_at=starts_at, asking=None, who="move"
            ) from None
        log.info("booking.moved", booking_id=str(moved.id), from_id=str(booking.id), by="patient")
        return self._committed(body, publications)

    def _committed(self, body: _Body, publications: tuple[Publication, ...]) -> _Body:
        """The change is committed: its email goes to the broker in the background, so a broker that is
        down only delays it (the sweep publishes it again)."""
        self._publisher.publish_soon(publications)
        return body

    async def _lead_id_of(self, session: AsyncSession, booking_id: uuid.UUID) -> uuid.UUID:
        lead_id = (await session.execute(select(Booking.lead_id).where(Booking.id == booking_id))).scalar()
        if lead_id is None:
            raise NotFound("booking")
        return lead_id

    @staticmethod
    async def _current(session: AsyncSession, booking_id: uuid.UUID) -> Booking:
        """The booking a link names, followed through its moves: an older email's link acts on the
        consultation as it stands now."""
        booking = await session.get(Booking, booking_id)
        if booking is None:
            raise NotFound("booking")
        # Bounded: a chain of moves is short, and a cycle (impossible by construction) must not hang us.
        for _ in range(100):
            later = (
                (
                    await session.execute(
                        select(Booking)
                        .where(Booking.rescheduled_from_id == booking.id)
                        .order_by(Booking.created_at.desc())
                    )
                )
                .scalars()
                .first()
            )
            if later is None:
                break
            booking = later
        return booking

    def _change_until(self, booking: Booking) -> dt.datetime:
        return booking.starts_at - dt.timedelta(hours=self._settings.booking.change_cutoff_hours)

    def _refuse_stale(self, booking: Booking, expired: bool, now: dt.datetime) -> None:
        """An expired link is only good for hearing "call the clinic": if the booking could still be
        changed online, the token is from an older email (a later move has fresh links)."""
        if expired and booking.status == "booked" and now < self._change_until(booking):
            raise LinkInvalid(
                "This link has expired: use the links in your latest confirmation email, or call us at "
                f"{self._settings.clinic.phone}."
            )

    def _check_changeable(self, booking: Booking, now: dt.datetime) -> None:
        if booking.status != "booked":
            raise Conflict(
                f"This consultation can no longer be changed online. Please call us at {self._settings.clinic.phone}.",
                phone=self._settings.clinic.phone,
            )
        if now >= self._change_until(booking):
            hours = self._settings.booking.change_cutoff_hours
            raise Conflict(
                f"Your consultation is less than {hours} hours away, so it can no longer be changed online. "
                f"Please call us at {self._settings.clinic.phone}.",
                phone=self._settings.clinic.phone,
            )

    async def _patient_view(self, session: AsyncSession, booking: Booking, now: dt.datetime) -> PatientBookingOut:
        name = (await session.execute(select(StaffMember.name).where(StaffMember.id == booking.staff_id))).scalar()
        change_until = self._change_until(booking)
        can_change = booking.status == "booked" and now < change_until
        cancel_url, reschedule_url = (
            links.manage_urls(self._settings, booking.id, booking.starts_at) if can_change else (None, None)
        )
        return PatientBookingOut(
            id=booking.id,
            status=booking.status,
            starts_at=booking.starts_at,
            ends_at=booking.ends_at,
            location=booking.location,
            address=self.address(booking.location),
            clinician=name or "",
            change_until=change_until,
            can_change=can_change,
            cancel_url=cancel_url,
            reschedule_url=reschedule_url,
            clinic_phone=self._settings.clinic.phone,
        )

    # --- staff --------------------------------------------------------------------------------------

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
            self._check_area(lead, place)
            if clinician_id is not None:
                await clinician(session, clinician_id, "clinician_id")
            availability = await self._availability(
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
            address=self.address(place),
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
                lead = await self._locked_lead(session, lead_id)
                location = data.location or lead.location
                if data.clinician_id is not None:
                    await clinician(session, data.clinician_id, "clinician_id")
                if lead.status not in OPEN_STATUSES:
                    raise Conflict(f"The lead is {lead.status}: only an open lead can be booked.")
                self._check_area(lead, location)
                if await self._live_booking(session, lead.id) is not None:
                    raise self._already_booked("staff")
                booking = await self._place(
                    session,
                    lead=lead,
                    location=location,
                    starts_at=starts_at,
                    asking=self._staff(),
                    now=now,
                    booked_by=actor.id,
                    clinician_id=data.clinician_id,
                )
                publications = await self._after_change(
                    session, lead=lead, booking=booking, event="booked", actor_id=actor.id, now=now
                )
                audit.record(
                    session,
                    actor_id=actor.id,
                    action="booking.create",
                    lead_id=lead.id,
                    target_staff_id=booking.staff_id,
                    fields=["starts_at", "location", *(["clinician_id"] if data.clinician_id else [])],
                )
                body = await self._staff_view(session, booking)
        except IntegrityError:
            raise await self._explain_clash(
                lead_id=lead_id, location=location, starts_at=starts_at, asking=self._staff(), who="staff"
            ) from None
        log.info("booking.booked", booking_id=str(booking.id), lead_id=str(lead_id), by="staff")
        return self._committed(body, publications)

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
                lead_id = await self._lead_id_of(session, booking_id)
                lead = await self._locked_lead(session, lead_id)
                booking = await session.get_one(Booking, booking_id)
                location = booking.location
                if patch.status is not msgspec.UNSET:
                    publications = await self._set_status(session, lead, booking, patch.status, actor, now)
                    body = await self._staff_view(session, booking)
                else:
                    clinician_id = patch.clinician_id if patch.clinician_id is not msgspec.UNSET else None
                    moved = await self._move(session, lead, booking, starts_at, clinician_id, actor, now)
                    publications = moved[1]
                    body = await self._staff_view(session, moved[0])
        except IntegrityError:
            raise await self._explain_clash(
                lead_id=lead_id, location=location, starts_at=starts_at or now, asking=self._staff(), who="move"
            ) from None
        return self._committed(body, publications)

    async def _set_status(
        self, session: AsyncSession, lead: Lead, booking: Booking, target: str, actor: StaffMember, now: dt.datetime
    ) -> tuple[Publication, ...]:
        if booking.status == target:
            return ()  # said twice (a double click): nothing more happens
        if booking.status != "booked":
            raise Conflict(f"The booking is {booking.status}; it cannot become {target}.", status=booking.status)
        if target in ("attended", "no_show") and now < booking.starts_at:
            raise Conflict(f"A consultation can be marked {target} once it has started.")
        booking.status, booking.updated_at = target, now
        if target == "cancelled":
            booking.cancelled_at = now
        event: follow_ups.BookingEvent = (
            "cancelled" if target == "cancelled" else "attended" if target == "attended" else "no_show"
        )
        publications = await self._after_change(
            session, lead=lead, booking=booking, event=event, actor_id=actor.id, now=now
        )
        action = {"cancelled": "booking.cancel", "attended": "booking.attended", "no_show": "booking.no_show"}[target]
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
        if booking.status != "booked":
            raise Conflict(f"The booking is {booking.status}: only a live booking can be moved.", status=booking.status)
        target = starts_at or booking.starts_at
        if target <= now:
            raise InvalidFields([FieldProblem("starts_at", "A consultation must start in the future.")])
        if clinician_id is not None:
            await clinician(session, clinician_id, "clinician_id")
        if target == booking.starts_at and clinician_id in (None, booking.staff_id):
            return booking, ()  # already there
        moved = await self._place(
            session,
            lead=lead,
            location=booking.location,
            starts_at=target,
            asking=self._staff(),
            now=now,
            booked_by=actor.id,
            clinician_id=clinician_id,
            replacing=booking,
        )
        publications = await self._after_change(
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
        stmt = stmt.where(Booking.status == status) if status else stmt.where(Booking.status != "cancelled")
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
        return ScheduleOut(items=[self._row_out(b, f"{first} {last}", c, by) for b, first, last, c, by in rows])

    async def _staff_view(self, session: AsyncSession, booking: Booking) -> BookingOut:
        lead = await session.get_one(Lead, booking.lead_id)
        names = dict(
            (
                await session.execute(
                    select(StaffMember.id, StaffMember.name).where(
                        StaffMember.id.in_([i for i in (booking.staff_id, booking.booked_by_id) if i is not None])
                    )
                )
            )
            .tuples()
            .all()
        )
        booker = names.get(booking.booked_by_id) if booking.booked_by_id else None
        return self._row_out(booking, f"{lead.first_name} {lead.last_name}", names.get(booking.staff_id, ""), booker)

    def _row_out(self, booking: Booking, lead_name: str, clinician_name: str, booker_name: str | None) -> BookingOut:
        return BookingOut(
            id=booking.id,
            lead_id=booking.lead_id,
            lead_name=lead_name,
            clinician=StaffRef(id=booking.staff_id, name=clinician_name),
            location=booking.location,
            address=self.address(booking.location),
            starts_at=booking.starts_at,
            ends_at=booking.ends_at,
            status=booking.status,
            booked_by=StaffRef(id=booking.booked_by_id, name=booker_name or "")
            if booking.booked_by_id is not None
            else None,
            rescheduled_from_id=booking.rescheduled_from_id,
            created_at=booking.created_at,
        )


def _slot_dicts(found: Sequence[Offer]) -> list[dict[str, Any]]:
    """For a 409's body: the same shape (and UTC ISO times) as the slots list."""
    return cast(
        "list[dict[str, Any]]", msgspec.to_builtins([SlotOut(o.starts_at, o.ends_at, o.location) for o in found])
    )


__all__ = ["BookingService", "LinkInvalid", "lock"]
