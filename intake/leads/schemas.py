"""Request and response bodies of the lead APIs (msgspec structs: fast, strict, in the OpenAPI)."""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated, Any, Literal

import msgspec

from intake.staff.schemas import StaffRef
from intake.vocabulary import Language, Location

PreferredContact = Literal["email", "phone", "text"]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class ContactIn(msgspec.Struct, forbid_unknown_fields=True):
    first_name: Name
    last_name: Name
    email: Annotated[str, msgspec.Meta(max_length=320)]
    preferred_contact: PreferredContact
    location: Location
    phone: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    zip: Annotated[str, msgspec.Meta(max_length=10)] | None = None


class ConsentIn(msgspec.Struct, forbid_unknown_fields=True):
    privacy: bool
    """The person accepted the privacy notice; required to be true."""
    email_followup: bool = False
    sms: bool = False


class IntakeSubmission(msgspec.Struct, forbid_unknown_fields=True):
    language: Language
    contact: ContactIn
    consent: ConsentIn
    answers: dict[str, Any]
    """`{linkId: value}` as the questionnaire defines; validated item by item."""


class ReasonOut(msgspec.Struct):
    code: str
    text: str


class ActionOut(msgspec.Struct):
    kind: str
    label: str
    href: str


class AdviceOut(msgspec.Struct):
    title: str
    body: str
    actions: list[ActionOut]


class IntakeResult(msgspec.Struct):
    lead_id: uuid.UUID
    screening_id: uuid.UUID
    tier: str
    route: str
    score: int
    rule_set: str
    reasons: list[ReasonOut]
    advice: AdviceOut
    disclaimer: str


# --- Staff side -------------------------------------------------------------------------------

Sort = Literal["urgency", "newest"]


class LeadFilters(msgspec.Struct, frozen=True):
    status: str | None = None
    tier: str | None = None
    route: str | None = None
    location: str | None = None
    assigned_to: uuid.UUID | None = None
    created_from: datetime.datetime | None = None
    created_to: datetime.datetime | None = None
    q: str | None = None

    def used(self) -> list[str]:
        return [name for name in self.__struct_fields__ if getattr(self, name) is not None]


class LeadRow(msgspec.Struct):
    id: uuid.UUID
    name: str
    tier: str
    route: str
    score: int
    status: str
    location: str
    created_at: datetime.datetime
    assigned_to: StaffRef | None
    last_contact_at: datetime.datetime | None
    next_follow_up_at: datetime.datetime | None


class LeadPage(msgspec.Struct):
    items: list[LeadRow]
    next_cursor: str | None


class QueueRow(msgspec.Struct):
    id: uuid.UUID
    name: str
    tier: str
    route: str
    score: int
    status: str
    location: str
    preferred_contact: str
    created_at: datetime.datetime
    minutes_since_submission: int
    assigned_to: StaffRef | None
    call_by: datetime.datetime | None
    """`soon` leads: staff call within one business day; this is that deadline."""


class QueuePage(msgspec.Struct):
    items: list[QueueRow]
    next_cursor: str | None


class LeadPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Only these may change; anything else (tier, email, ...) is refused with 422."""

    status: str | msgspec.UnsetType = msgspec.UNSET
    closed_reason: str | msgspec.UnsetType | None = msgspec.UNSET
    assigned_to: uuid.UUID | msgspec.UnsetType | None = msgspec.UNSET


class NoteIn(msgspec.Struct, forbid_unknown_fields=True):
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=5000)]
    contact_made: bool = False
    """The note records a call or message that reached the person: sets the lead's last contact."""


class NoteOut(msgspec.Struct):
    id: uuid.UUID
    lead_id: uuid.UUID
    author: StaffRef
    body: str
    created_at: datetime.datetime


class RescoreIn(msgspec.Struct, forbid_unknown_fields=True):
    rule_set_version: str | None = None
    """The rule set to score with; the newest when left out."""


class ContactOut(msgspec.Struct):
    first_name: str
    last_name: str
    email: str
    phone: str | None
    preferred_contact: str
    location: str
    zip: str | None
    language: str


class ConsentOut(msgspec.Struct):
    privacy_notice_version: str
    privacy_accepted_at: datetime.datetime
    email_followup: bool
    sms: bool


class ScreeningOut(msgspec.Struct):
    id: uuid.UUID
    created_at: datetime.datetime
    language: str
    rule_set_version: str
    tier: str
    route: str
    score: int
    reasons: list[ReasonOut]
    rescored_from_id: uuid.UUID | None
    answers: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    """Only for the roles that see answers (clinician, admin); absent otherwise."""


class TimelineItem(msgspec.Struct):
    """One entry of a lead's history. `kind` says which fields it carries; the others are absent.

    - a recorded change (`status_changed`, `assigned`, `unsubscribed`): from, to, reason, by
    - `note`: id, body, by
    - `email` or `webhook`: id, message, state, attempts, sent_at, last_error
    - `booking` (a move shows as a cancelled one and a new one): id, starts_at, location, status
    """

    at: datetime.datetime
    kind: str
    from_: str | msgspec.UnsetType | None = msgspec.field(default=msgspec.UNSET, name="from")
    to: str | msgspec.UnsetType | None = msgspec.UNSET
    reason: str | msgspec.UnsetType | None = msgspec.UNSET
    id: uuid.UUID | msgspec.UnsetType = msgspec.UNSET
    body: str | msgspec.UnsetType = msgspec.UNSET
    by: str | msgspec.UnsetType | None = msgspec.UNSET
    """Who: the staff member's name, or `system` for a change nobody on the staff made."""
    message: str | msgspec.UnsetType = msgspec.UNSET
    """Which email or webhook message."""
    state: str | msgspec.UnsetType = msgspec.UNSET
    """The delivery's state: queued, sending, sent, failed, dead, cancelled."""
    attempts: int | msgspec.UnsetType = msgspec.UNSET
    sent_at: datetime.datetime | msgspec.UnsetType | None = msgspec.UNSET
    last_error: str | msgspec.UnsetType | None = msgspec.UNSET
    starts_at: datetime.datetime | msgspec.UnsetType = msgspec.UNSET
    location: str | msgspec.UnsetType = msgspec.UNSET
    status: str | msgspec.UnsetType = msgspec.UNSET
    """The booking's status."""


class LeadDetail(msgspec.Struct):
    id: uuid.UUID
    status: str
    closed_reason: str | None
    created_at: datetime.datetime
    updated_at: datetime.datetime
    tier: str
    route: str
    score: int
    contact: ContactOut
    consent: ConsentOut | None
    """The newest consent."""
    assigned_to: StaffRef | None
    last_contact_at: datetime.datetime | None
    next_follow_up_at: datetime.datetime | None
    screenings: list[ScreeningOut]
    """Newest first; a re-scored screening and its original are both here."""
    timeline: list[TimelineItem]
    """Newest first."""


class PreviousResult(msgspec.Struct):
    rule_set_version: str
    tier: str
    score: int


class RescoreOut(msgspec.Struct):
    id: uuid.UUID
    rescored_from_id: uuid.UUID
    rule_set_version: str
    tier: str
    route: str
    score: int
    reasons: list[ReasonOut]
    previous: PreviousResult
    """The result of the screening scored again."""
