"""The clinic's shared words: languages, locations, roles, and the statuses of leads, follow-ups, emails, bookings.

The API's schemas use the `Literal` types (so the OpenAPI document lists the values); code compares against the
enums, whose members are plain strings in the database and in JSON.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

Language = Literal["en", "es"]
LANGUAGES: tuple[str, ...] = get_args(Language)

Location = Literal["boca_raton", "pompano_beach", "in_home", "virtual"]
LOCATIONS: tuple[str, ...] = get_args(Location)
CLINIC_LOCATIONS: tuple[str, ...] = ("boca_raton", "pompano_beach")
"""The locations with a street address; in-home and virtual visits have none."""

Role = Literal["front_desk", "clinician", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
CAN_SEE_ANSWERS: tuple[str, ...] = ("clinician", "admin")
"""Roles that may read a screening's answers (front desk sees contact, tier and reasons)."""
CAN_EXPORT: tuple[str, ...] = ("clinician", "admin")


class LeadStatus(StrEnum):
    """A lead's place in the pipeline; `intake.leads.lifecycle` says which may follow which."""

    NEW = "new"
    CONTACTED = "contacted"
    CONSULT_BOOKED = "consult_booked"
    CONSULT_DONE = "consult_done"
    CONVERTED = "converted"
    NOT_CONVERTED = "not_converted"
    REFERRED_OUT = "referred_out"
    CLOSED = "closed"


LEAD_STATUSES: tuple[str, ...] = tuple(LeadStatus)
OPEN_STATUSES: tuple[str, ...] = (
    LeadStatus.NEW,
    LeadStatus.CONTACTED,
    LeadStatus.CONSULT_BOOKED,
    LeadStatus.CONSULT_DONE,
)
ENDED_STATUSES: tuple[str, ...] = tuple(s for s in LeadStatus if s not in OPEN_STATUSES)
"""Statuses after which no follow-up email goes out."""
CLOSED_REASONS: tuple[str, ...] = ("no_response", "not_interested", "do_not_contact", "duplicate")


class FollowUpStatus(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    """A delivery row exists for it; the delivery's status says the rest."""
    CANCELLED = "cancelled"


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    """Claimed by a worker, under a lease."""
    SENT = "sent"
    FAILED = "failed"
    """A temporary failure; retried with backoff."""
    DEAD = "dead"
    CANCELLED = "cancelled"


class BookingStatus(StrEnum):
    BOOKED = "booked"
    CANCELLED = "cancelled"
    ATTENDED = "attended"
    NO_SHOW = "no_show"


BookingStatusName = Literal["booked", "cancelled", "attended", "no_show"]

__all__ = [
    "CAN_EXPORT",
    "CAN_SEE_ANSWERS",
    "CLINIC_LOCATIONS",
    "CLOSED_REASONS",
    "ENDED_STATUSES",
    "LANGUAGES",
    "LEAD_STATUSES",
    "LOCATIONS",
    "OPEN_STATUSES",
    "ROLES",
    "BookingStatus",
    "BookingStatusName",
    "DeliveryStatus",
    "FollowUpStatus",
    "Language",
    "LeadStatus",
    "Location",
    "Role",
]
