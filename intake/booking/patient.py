"""The patient's links: booking, and managing a booking, through the signed tokens of the clinic's emails."""

from __future__ import annotations

import datetime as dt
import uuid

import jwt
import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from intake import tokens
from intake.booking import links
from intake.booking.availability import aware
from intake.booking.parts import BookingParts
from intake.booking.schemas import PatientBookingOut, SlotOut, SlotsOut
from intake.booking.slots import offers
from intake.db.base import utcnow
from intake.db.models import Booking, Lead
from intake.problems import Conflict, NotFound
from intake.vocabulary import OPEN_STATUSES, BookingStatus

log = structlog.get_logger(__name__)


class LinkInvalid(Exception):
    """A booking or manage link that was tampered with, made for something else, or has expired (401)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class PatientBooking(BookingParts):
    """The patient's signed links: the free times, booking, and the manage link's view, cancel and reschedule."""

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
            self._placement.check_area(lead, location)
            asking = self._slots.for_patient(lead)
            live = moving if moving is not None and moving.status == BookingStatus.BOOKED else None
            availability = await self._slots.availability(
                session, location=location, now=now, horizon=asking.horizon, ignore=live.id if live else None
            )
        free = self._slots.free(availability, location=location, now=now, asking=asking)
        return SlotsOut(
            location=location,
            address=self._views.address(location),
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
                lead = await self._placement.locked_lead(session, lead_id)
                location = lead.location
                if lead.status not in OPEN_STATUSES:
                    raise Conflict(
                        f"Please call us at {self._settings.clinic.phone} to book your consultation.",
                        phone=self._settings.clinic.phone,
                    )
                asking = self._slots.for_patient(lead)
                booking, publications = await self._book(
                    session, lead, location=location, starts_at=starts_at, asking=asking, now=now, by=None
                )
                body = await self._views.patient_view(session, booking, now)
        except IntegrityError:
            raise await self._placement.explain_clash(
                lead_id=lead_id, location=location, starts_at=starts_at, asking=None, who="patient"
            ) from None
        log.info("booking.booked", booking_id=str(booking.id), lead_id=str(lead_id), by="patient")
        return self._changes.committed(body, publications)

    async def manage_view(self, *, token: str) -> PatientBookingOut:
        booking_id, expired = self._booking_of(token)
        now = utcnow()
        async with self._sessionmaker() as session:
            booking = await self._current(session, booking_id)
            self._refuse_stale(booking, expired, now)
            return await self._views.patient_view(session, booking, now)

    async def cancel_by_link(self, *, token: str) -> PatientBookingOut:
        """Cancelling twice is fine: the second time answers with the cancelled booking."""
        booking_id, expired = self._booking_of(token)
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            lead = await self._placement.locked_lead(session, await self._placement.lead_id_of(session, booking_id))
            booking = await self._current(session, booking_id)
            self._refuse_stale(booking, expired, now)
            if booking.status == BookingStatus.CANCELLED:
                return await self._views.patient_view(session, booking, now)
            self._check_changeable(booking, now)
            booking.status, booking.cancelled_at, booking.updated_at = BookingStatus.CANCELLED, now, now
            publications = await self._changes.after_change(
                session, lead=lead, booking=booking, event="cancelled", actor_id=None, now=now
            )
            body = await self._views.patient_view(session, booking, now)
        log.info("booking.cancelled", booking_id=str(booking.id), by="patient")
        return self._changes.committed(body, publications)

    async def reschedule_by_link(self, *, token: str, starts_at: dt.datetime) -> PatientBookingOut:
        """A new time: a new booking (and confirmation); asking again for the same time changes nothing."""
        booking_id, expired = self._booking_of(token)
        starts_at = aware(starts_at, "starts_at")
        now = utcnow()
        lead_id = uuid.UUID(int=0)
        location = ""
        try:
            async with self._sessionmaker() as session, session.begin():
                lead_id = await self._placement.lead_id_of(session, booking_id)
                lead = await self._placement.locked_lead(session, lead_id)
                booking = await self._current(session, booking_id)
                self._refuse_stale(booking, expired, now)
                location = booking.location
                if booking.status == BookingStatus.BOOKED and booking.starts_at == starts_at:
                    return await self._views.patient_view(session, booking, now)
                if booking.status == BookingStatus.CANCELLED:
                    raise Conflict(
                        "This consultation was cancelled. Book a new one with your booking link.",
                        booking_url=links.booking_url(self._settings, lead.id),
                    )
                self._check_changeable(booking, now)
                moved = await self._placement.place(
                    session,
                    lead=lead,
                    location=location,
                    starts_at=starts_at,
                    asking=self._slots.for_patient(lead),
                    now=now,
                    booked_by=None,
                    replacing=booking,
                )
                publications = await self._changes.after_change(
                    session, lead=lead, booking=moved, event="moved", actor_id=None, now=now
                )
                body = await self._views.patient_view(session, moved, now)
        except IntegrityError:
            raise await self._placement.explain_clash(
                lead_id=lead_id, location=location, starts_at=starts_at, asking=None, who="move"
            ) from None
        log.info("booking.moved", booking_id=str(moved.id), from_id=str(booking.id), by="patient")
        return self._changes.committed(body, publications)

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

    def _refuse_stale(self, booking: Booking, expired: bool, now: dt.datetime) -> None:
        """An expired link is only good for hearing "call the clinic": if the booking could still be
        changed online, the token is from an older email (a later move has fresh links)."""
        if expired and booking.status == BookingStatus.BOOKED and now < self._views.change_until(booking):
            raise LinkInvalid(
                "This link has expired: use the links in your latest confirmation email, or call us at "
                f"{self._settings.clinic.phone}."
            )

    def _check_changeable(self, booking: Booking, now: dt.datetime) -> None:
        if booking.status != BookingStatus.BOOKED:
            raise Conflict(
                f"This consultation can no longer be changed online. Please call us at {self._settings.clinic.phone}.",
                phone=self._settings.clinic.phone,
            )
        if now >= self._views.change_until(booking):
            hours = self._settings.booking.change_cutoff_hours
            raise Conflict(
                f"Your consultation is less than {hours} hours away, so it can no longer be changed online. "
                f"Please call us at {self._settings.clinic.phone}.",
                phone=self._settings.clinic.phone,
            )


__all__ = ["LinkInvalid", "PatientBooking"]
