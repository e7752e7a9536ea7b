"""One shape for every client error: `{status_code, detail, errors: [{field, message}]}`."""

from __future__ import annotations

import re
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from intake.leads.services import IdempotencyKeyReused, SubmissionInvalid

# msgspec says "... - at `$.contact.email`"; Litestar's keys look like "data.contact.email".
_AT = re.compile(r"\s*-\s*at\s*`\$\.?([^`]*)`")


def _body(status: int, detail: str, errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"status_code": status, "detail": detail, "errors": errors or []}


def _field_of(item: dict[str, Any]) -> tuple[str, str]:
    message = str(item.get("message", "invalid"))
    key = str(item.get("key") or "")
    found = _AT.search(message)
    if found:
        message = _AT.sub("", message)
        key = found.group(1) or key
    for prefix in ("data.", "data"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
            break
    if not key and item.get("source") == "body":
        key = "body"
    return key or "request", message


def validation_handler(_: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors = [dict(zip(("field", "message"), _field_of(item), strict=True)) for item in extra if isinstance(item, dict)]
    if not errors:
        # A body that is not JSON at all: still name where the problem is.
        errors = [{"field": "body", "message": str(exc.detail)}]
    return Response(_body(422, "The request has invalid fields.", errors), status_code=422)


def submission_handler(_: Request[Any, Any, Any], exc: SubmissionInvalid) -> Response[dict[str, Any]]:
    errors = [{"field": e.field, "message": e.message} for e in exc.errors]
    return Response(_body(422, "The request has invalid fields.", errors), status_code=422)


def idempotency_handler(_: Request[Any, Any, Any], __: IdempotencyKeyReused) -> Response[dict[str, Any]]:
    detail = "This Idempotency-Key was already used with a different request body."
    return Response(
        _body(422, detail, [{"field": "Idempotency-Key", "message": detail}]),
        status_code=422,
    )


def http_handler(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    return Response(_body(exc.status_code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ValidationException: validation_handler,
    SubmissionInvalid: submission_handler,
    IdempotencyKeyReused: idempotency_handler,
    HTTPException: http_handler,
}
