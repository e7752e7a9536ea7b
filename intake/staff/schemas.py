"""Bodies of the auth, staff and audit APIs."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

import msgspec

from intake.vocabulary import Role


class StaffRef(msgspec.Struct):
    """A staff member as other records show them: who is assigned, who booked, which clinician."""

    id: uuid.UUID
    name: str


class LoginIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=320)]
    password: Annotated[str, msgspec.Meta(max_length=1000)]


class PasswordChangeIn(msgspec.Struct, forbid_unknown_fields=True):
    current_password: Annotated[str, msgspec.Meta(max_length=1000)]
    new_password: Annotated[str, msgspec.Meta(max_length=1000)]


class TokenOut(msgspec.Struct):
    access_token: str
    token_type: str
    expires_in: int
    """Seconds until the token expires."""


class StaffOut(msgspec.Struct):
    id: uuid.UUID
    email: str
    name: str
    role: str
    disabled: bool
    locked_until: dt.datetime | None
    created_at: dt.datetime


class StaffCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=320)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    role: Role
    password: Annotated[str, msgspec.Meta(max_length=1000)]


class StaffPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | msgspec.UnsetType = msgspec.UNSET
    role: Role | msgspec.UnsetType = msgspec.UNSET
    disabled: bool | msgspec.UnsetType = msgspec.UNSET
    password: Annotated[str, msgspec.Meta(max_length=1000)] | msgspec.UnsetType = msgspec.UNSET

    def changes(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__struct_fields__ if getattr(self, f) is not msgspec.UNSET}


class AuditOut(msgspec.Struct):
    id: uuid.UUID
    at: dt.datetime
    actor_id: uuid.UUID | None
    action: str
    lead_id: uuid.UUID | None
    target_staff_id: uuid.UUID | None
    fields: list[str]
    request_id: str | None


class AuditPage(msgspec.Struct):
    items: list[AuditOut]
    next_cursor: str | None
