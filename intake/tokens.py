"""Signed, expiring tokens for links in emails (booking, manage a booking, unsubscribe): JWT with an audience each."""

from __future__ import annotations

import datetime as dt
import uuid

import jwt

from intake.db.base import utcnow

BOOK = "intake:book"
MANAGE_BOOKING = "intake:manage-booking"
UNSUBSCRIBE = "intake:unsubscribe"


class BadToken(Exception):
    """Expired, tampered with, or made for another purpose."""


def sign(secret: str, purpose: str, subject: uuid.UUID, lifetime: dt.timedelta) -> str:
    now = utcnow()
    claims = {"sub": str(subject), "aud": purpose, "iat": now, "exp": now + lifetime}
    return jwt.encode(claims, secret, algorithm="HS256")


def verify(secret: str, purpose: str, token: str) -> uuid.UUID:
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], audience=purpose)
        return uuid.UUID(str(claims["sub"]))
    except (jwt.PyJWTError, KeyError, ValueError):
        raise BadToken(purpose) from None
