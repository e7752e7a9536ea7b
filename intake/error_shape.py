"""The one error shape, `{status_code, detail, errors: [{field, message}]}`, and the statuses a route documents."""

from __future__ import annotations

import msgspec
from litestar.openapi import ResponseSpec

MAX_ERRORS = 50
"""A reply names at most this many fields; `errors_left_out` counts the rest."""
MAX_TEXT = 300
"""A field name or message is cut to this many characters: an error reply never echoes a large body back."""


class FieldError(msgspec.Struct):
    field: str
    """Where: a dotted path into the body (`contact.email`, `answers.age`), a query parameter, or a header."""
    message: str


class ErrorBody(msgspec.Struct):
    """Every 4xx reply. A 409 may add details of its own (`allowed`, `next_slots`, `status`, `clinic_phone`)."""

    status_code: int
    detail: str
    errors: list[FieldError]
    errors_left_out: int | msgspec.UnsetType = msgspec.UNSET
    """Present when more than 50 fields were at fault: how many are not listed."""


_DESCRIPTIONS = {
    400: "The request could not be read",
    401: "No valid bearer token (staff routes), or a link that is invalid or expired (patients' booking links)",
    403: "The signed-in role may not do this",
    404: "No such record",
    409: "Valid, but it clashes with the current state (a status move, a taken slot, a duplicate)",
    413: "The body is larger than INTAKE_MAX_BODY_BYTES",
    415: "A body must be JSON, sent with Content-Type: application/json",
    422: "Invalid fields, parameters or headers; `errors` names each (at most 50)",
    429: "Too many requests from this client; Retry-After says when to come back",
}
JSON_BODY = (413, 415, 422)
"""What any route that reads a JSON body may answer besides its own statuses."""


def documented(*statuses: int) -> dict[int, ResponseSpec]:
    """`responses=` of a route: these statuses, and 400, each with the one error shape."""
    return {
        status: ResponseSpec(ErrorBody, description=_DESCRIPTIONS[status], generate_examples=False)
        for status in sorted({400, *statuses})
    }
