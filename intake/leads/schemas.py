"""Request and response bodies of the lead APIs (msgspec structs: fast, strict, in the OpenAPI)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import msgspec

Language = Literal["en", "es"]
PreferredContact = Literal["email", "phone", "text"]
Location = Literal["boca_raton", "pompano_beach", "in_home", "virtual"]
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


class FieldError(msgspec.Struct):
    field: str
    message: str


class ErrorBody(msgspec.Struct):
    status_code: int
    detail: str
    errors: list[FieldError] = msgspec.field(default_factory=list)
