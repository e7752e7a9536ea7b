"""Views: the bodies of a booking as the patient and as staff see it, and the slots a 409 suggests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from intake.booking import links
from intake.booking.schemas import BookingOut, PatientBookingOut, SlotOut
from intake.booking.slots import Offer
from intake.db.models import Booking, Lead, StaffMember
from intake.settings import Settings
from intake.staff.schemas import StaffRef
from intake.vocabulary import BookingStatus


class Views:
    """What a booking looks like to the patient (PatientBookingOut) and to staff (BookingOut)."""

    def __init__(self, settings: Settings):
        self._settings = settings

    def address(self, location: str) -> str | None:
        return self._settings.booking.addresses.get(location)

    def change_until(self, booking: Booking) -> dt.datetime:
        return booking.starts_at - dt.timedelta(hours=self._settings.booking.change_cutoff_hours)

    async def patient_view(self, session: AsyncSession, booking: Booking, now: dt.datetime) -> PatientBookingOut:
        name = (await session.execute(select(StaffMember.name).where(StaffMember.id == booking.staff_id))).scalar()
        change_until = self.change_until(booking)
        can_change = booking.status == BookingStatus.BOOKED and now < change_until
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

    async def staff_view(self, session: AsyncSession, booking: Booking) -> BookingOut:
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
        return self.row_out(booking, f"{lead.first_name} {lead.last_name}", names.get(booking.staff_id, ""), booker)

    def row_out(self, booking: Booking, lead_name: str, clinician_name: str, booker_name: str | None) -> BookingOut:
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


def slot_dicts(found: Sequence[Offer]) -> list[dict[str, Any]]:
    """For a 409's body: the same shape (and UTC ISO times) as the slots list."""
    return cast(
        "list[dict[str, Any]]", msgspec.to_builtins([SlotOut(o.starts_at, o.ends_at, o.location) for o in found])
    )
