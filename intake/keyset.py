"""Opaque keyset cursors: the sort and the last row's key, base64url-encoded JSON."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from typing import Any

from intake import instants
from intake.problems import FieldProblem, InvalidFields


def encode(sort: str, key: tuple[Any, ...]) -> str:
    values = [v.isoformat() if isinstance(v, dt.datetime) else str(v) if isinstance(v, uuid.UUID) else v for v in key]
    raw = json.dumps({"s": sort, "k": values}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, sort: str, types: tuple[type, ...]) -> tuple[Any, ...]:
    """The key a cursor carries, checked against the sort it was made for; 422 naming `cursor` if not."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        if payload["s"] != sort or len(payload["k"]) != len(types):
            raise ValueError("sort changed")
        return tuple(_parse(kind, value) for kind, value in zip(types, payload["k"], strict=True))
    except (ValueError, KeyError, TypeError, binascii.Error, json.JSONDecodeError):
        raise InvalidFields([FieldProblem("cursor", "Not a cursor from this list (or the sort changed).")]) from None


def _parse(kind: type, value: Any) -> Any:
    if kind is dt.datetime:
        moment = dt.datetime.fromisoformat(value)
        if instants.problem(moment, "cursor"):
            raise ValueError("not a moment this list wrote")
        return moment
    if kind is uuid.UUID:
        return uuid.UUID(value)
    if kind is int:
        if not isinstance(value, int):
            raise TypeError("not an int")
        return value
    raise TypeError(kind)
