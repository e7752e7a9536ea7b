"""JSON request bodies: sent as `application/json`, nested at most MAX_DEPTH deep, holding no NUL character.

A form on another site can POST `text/plain` (or no type at all) from a visitor's browser without a CORS
preflight; only `application/json` needs one, so it is the only type a JSON route reads (415 otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from litestar import Request
from litestar.exceptions import HTTPException

from intake.problems import FieldProblem, InvalidFields

MAX_DEPTH = 32
"""The screen nests 3 deep; a thousand levels would exhaust the decoder's recursion."""
# Tokens that change the depth, and strings (skipped whole: a "[" inside one is text). The string pattern
# is the unrolled loop, linear in the body's length.
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
# A \u0000 escape that is not itself an escaped backslash followed by "u0000".
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


class UnsupportedMediaType(HTTPException):
    status_code = 415


class JSONRequest(Request[Any, Any, Any]):
    """The app's request: its `json()` checks the body before (type, depth) and after (NUL) decoding it."""

    async def json(self) -> Any:
        body = await self.body()
        if body:
            media_type, _ = self.content_type
            if media_type != "application/json":
                raise UnsupportedMediaType(
                    detail="Send the body as JSON, with Content-Type: application/json.",
                    extra=[
                        {"field": "Content-Type", "message": f"Must be application/json, not {media_type or 'none'}."}
                    ],
                )
            if _too_deep(body):
                raise InvalidFields([FieldProblem("body", f"JSON may nest at most {MAX_DEPTH} levels deep.")])
        value = await super().json()
        if body and _NUL.search(body):
            # PostgreSQL stores no NUL in text or JSON: refuse it here, by field, not as a failed statement.
            fields = list(_nul_fields(value, "")) or ["body"]
            raise InvalidFields([FieldProblem(field, "Text cannot contain a NUL character.") for field in fields])
        return value


def _too_deep(body: bytes) -> bool:
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return False  # the common case, without a scan
    depth = 0
    for token in _TOKENS.finditer(body):
        char = token.group()
        if char in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif char in (b"]", b"}"):
            depth -= 1
    return False


def _nul_fields(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, str):
        if "\x00" in value:
            yield path or "body"
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                yield where.replace("\x00", "\\0")
            else:
                yield from _nul_fields(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_fields(item, f"{path}[{index}]")
