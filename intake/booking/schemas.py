"""Request and response bodies of the availability, patient booking and staff booking APIs."""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated, Literal

import msgspec

from intake.staff.schemas import StaffRef
from intake.vocabulary import Location

LOCATIONS: tuple[str, ...] = ("boca_raton", "pompano_beach", "in_home", "virtual")
# "09:00" (what an admin types) or "09:00:00".
LocalTime = Annotated[str, msgspec.Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$", examples=["09:00"])]
Token = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


# --- availability (admin) ---------------------------------------------------------------------


class RuleIn(msgspec.Struct, forbid_unknown_fields=True):
    staff_id: uuid.UUID
    """A clinician."""
    location: Location
    weekday: Annotated[int, msgspec.Meta(ge=0, le=6, description="0 = Monday ... 6 = Sunday")]
    start_time: LocalTime
    end_time: LocalTime
    """Clinic local time (America/New_York), after start_time."""


class RuleOut(msgspec.Struct):
    id: uuid.UUID
    staff: StaffRef
    location: str
    weekday: int
    start_time: str
    end_time: str
    created_at: datetime.datetime


class ExceptionIn(msgspec.Struct, forbid_unknown_fields=True):
    starts_at: datetime.datetime
    ends_at: datetime.datetime
    staff_id: uuid.UUID | None = None
    """A clinician's time off; none: everyone (at `location`, if given)."""
    location: Location | None = None
    reason: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class ExceptionOut(msgspec.Struct):
    id: uuid.UUID
    starts_at: datetime.datetime
    ends_at: datetime.datetime
    staff_id: uuid.UUID | None
    location: str | None
    reason: str | None
    created_at: datetime.datetime


class LocationSettingsIn(msgspec.Struct, forbid_unknown_fields=True):
    slot_minutes: Annotated[int, msgspec.Meta(ge=10, le=240)] = 30
    buffer_minutes: Annotated[int, msgspec.Meta(ge=0, le=120)] = 0


class LocationSettingsOut(msgspec.Struct):
    location: str
    slot_minutes: int
    buffer_minutes: int


# --- patients (public, signed links) -----------------------------------------------------------


class SlotOut(msgspec.Struct):
    starts_at: datetime.datetime
    ends_at: datetime.datetime
    location: str


class SlotsOut(msgspec.Struct):
    location: str
    address: str | None
    """The clinic's address; none for in-home and virtual consultations."""
    time_zone: str
    slots: list[SlotOut]


class BookIn(msgspec.Struct, forbid_unknown_fields=True):
    token: Token
    """The booking link's token."""
    starts_at: datetime.datetime
    """One of the offered starts, with its UTC offset."""


class ManageIn(msgspec.Struct, forbid_unknown_fields=True):
    token: Token
    """The manage token of the confirmation email's links."""


class RescheduleIn(msgspec.Struct, forbid_unknown_fields=True):
    token: Token
    starts_at: datetime.datetime


class PatientBookingOut(msgspec.Struct):
    id: uuid.UUID
    status: str
    starts_at: datetime.datetime
    ends_at: datetime.datetime
    location: str
    address: str | None
    clinician: str
    change_until: datetime.datetime
    """Cancel and reschedule work online until then; after it, call the clinic."""
    can_change: bool
    cancel_url: str | None
    reschedule_url: str | None
    clinic_phone: str


# --- staff ------------------------------------------------------------------------------------


class StaffBookingIn(msgspec.Struct, forbid_unknown_fields=True):
    starts_at: datetime.datetime
    clinician_id: uuid.UUID | None = None
    """None: any clinician free then."""
    location: Location | None = None
    """None: the lead's location."""


class StaffSlotOut(msgspec.Struct):
    starts_at: datetime.datetime
    ends_at: datetime.datetime
    location: str
    clinicians: list[StaffRef]
    """Who is free then; booking without a clinician_id picks the least busy of them."""


class StaffSlotsOut(msgspec.Struct):
    location: str
    address: str | None
    time_zone: str
    slots: list[StaffSlotOut]


class BookingPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Either a new time (optionally with a clinician) or a new status, not both."""

    starts_at: datetime.datetime | msgspec.UnsetType = msgspec.UNSET
    clinician_id: uuid.UUID | msgspec.UnsetType = msgspec.UNSET
    status: Literal["cancelled", "attended", "no_show"] | msgspec.UnsetType = msgspec.UNSET


class BookingOut(msgspec.Struct):
    id: uuid.UUID
    lead_id: uuid.UUID
    lead_name: str
    clinician: StaffRef
    location: str
    address: str | None
    starts_at: datetime.datetime
    ends_at: datetime.datetime
    status: str
    booked_by: StaffRef | None
    """None: the patient booked through their link."""
    rescheduled_from_id: uuid.UUID | None
    created_at: datetime.datetime


class ScheduleOut(msgspec.Struct):
    items: list[BookingOut]
