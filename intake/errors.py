"""One shape for every client error: `{status_code, detail, errors: [{field, message}]}`."""

from __future__ import annotations

import re
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from intake.error_shape import MAX_ERRORS, MAX_TEXT
from intake.logs import error_summary
from intake.problems import Conflict, InvalidFields, NotFound

# msgspec says "... - at `$.contact.email`"; Litestar's keys look like "data.contact.email".
_AT = re.compile(r"\s*-\s*at\s*`\$\.?([^`]*)`")
# "Object contains unknown field `x`" / "Object missing required field `x`": the field is x, not its parent.
_NAMED_FIELD = re.compile(r"(?:unknown|missing required) field `([^`]+)`")


def _body(status: int, detail: str, errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The reply: at most MAX_ERRORS fields, each cut to MAX_TEXT characters, and a count of those left out."""
    errors = errors or []
    body: dict[str, Any] = {
        "status_code": status,
        "detail": _cut(detail),
        "errors": [{"field": _cut(e["field"]), "message": _cut(e["message"])} for e in errors[:MAX_ERRORS]],
    }
    if len(errors) > MAX_ERRORS:
        body["errors_left_out"] = len(errors) - MAX_ERRORS
    return body


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


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
    named = _NAMED_FIELD.search(message)
    if named:
        key = f"{key}.{named.group(1)}" if key else named.group(1)
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


def invalid_handler(_: Request[Any, Any, Any], exc: InvalidFields) -> Response[dict[str, Any]]:
    errors = [{"field": e.field, "message": e.message} for e in exc.errors]
    return Response(_body(422, exc.detail, errors), status_code=422)


def not_found_handler(_: Request[Any, Any, Any], exc: NotFound) -> Response[dict[str, Any]]:
    return Response(_body(404, f"No such {exc.what}."), status_code=404)


def conflict_handler(_: Request[Any, Any, Any], exc: Conflict) -> Response[dict[str, Any]]:
    return Response({**_body(409, exc.detail), **exc.extra}, status_code=409)


def http_handler(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    headers, detail = dict(exc.headers or {}), str(exc.detail)
    if exc.status_code == 429:
        detail = "Too many requests from this address. Please try again in a minute."
        if "RateLimit-Reset" in headers:
            headers["Retry-After"] = headers["RateLimit-Reset"]
    # Ours carry the field at fault in `extra` (415 names Content-Type); Litestar's own carry none.
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors = [
        {"field": str(e["field"]), "message": str(e.get("message", ""))}
        for e in extra
        if isinstance(e, dict) and "field" in e
    ]
    if exc.status_code == 400 and not errors:
        errors = [{"field": "body", "message": detail}]  # Litestar's 400s are bodies it cannot read (bad JSON)
    return Response(_body(exc.status_code, detail, errors), status_code=exc.status_code, headers=headers)


log = structlog.get_logger(__name__)


def unexpected_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.error("http.unhandled_error", route=request.scope.get("path_template"), **error_summary(exc))
    return Response(_body(500, "Internal Server Error"), status_code=500)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    Exception: unexpected_handler,
    ValidationException: validation_handler,
    InvalidFields: invalid_handler,
    NotFound: not_found_handler,
    Conflict: conflict_handler,
    HTTPException: http_handler,
}
