"""Request ids, one access line per request (method, route, status, time: never bodies or queries), no NUL in URLs."""

from __future__ import annotations

import os
import re
import time
from urllib.parse import parse_qsl

import msgspec
import structlog
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.response.base import ASGIResponse
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from intake.error_shape import ErrorBody, FieldError

log = structlog.get_logger("intake.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        method = str(scope.get("method", ""))
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.match(incoming) else os.urandom(16).hex()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableScopeHeaders.from_message(message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            # The route template, not the path: ids in paths are fine, but query strings carry searches.
            log.info(
                "http.request",
                method=method,
                route=scope.get("path_template") or "<unmatched>",
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
            structlog.contextvars.unbind_contextvars("request_id")

    return middleware


def refuse_nul_middleware(app: ASGIApp) -> ASGIApp:
    """A NUL character in the query string is 422 (naming the parameter), in the path 404: PostgreSQL cannot
    compare text that holds one. Answered here, inside the access line, in the one error shape."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            query = scope.get("query_string", b"")
            if b"%00" in query or b"\x00" in query:
                pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
                names = sorted({k.replace("\x00", "\\0") for k, v in pairs if "\x00" in k + v}) or ["query"]
                errors = [FieldError(name, "Text cannot contain a NUL character.") for name in names]
                await _reply(ErrorBody(422, "The request has invalid fields.", errors), scope, receive, send)
                return
            if "\x00" in scope.get("path", ""):
                await _reply(ErrorBody(404, "No such record.", []), scope, receive, send)
                return
        await app(scope, receive, send)

    return middleware


async def _reply(body: ErrorBody, scope: Scope, receive: Receive, send: Send) -> None:
    response = ASGIResponse(body=msgspec.json.encode(body), status_code=body.status_code, media_type="application/json")
    await response(scope, receive, send)
