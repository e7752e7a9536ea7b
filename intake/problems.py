"""Domain errors the HTTP layer turns into 404, 409 and 422; services raise them, never HTTP exceptions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    message: str


class InvalidFields(Exception):
    """422: one or more fields are wrong; nothing was written."""

    def __init__(self, errors: list[FieldProblem], detail: str = "The request has invalid fields.") -> None:
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = errors
        self.detail = detail


class NotFound(Exception):
    """404: no such row (or none the caller may see)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found")
        self.what = what


class Conflict(Exception):
    """409: the request is valid but clashes with the current state (a transition, a taken slot)."""

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
