"""Signed, expiring tokens for links in emails (booking, manage a booking, unsubscribe): JWT with an audience each."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import uuid
from functools import lru_cache
from pathlib import Path

import jwt
import msgspec

from intake.settings import Settings

BOOK = "intake:book"
MANAGE_BOOKING = "intake:manage-booking"
UNSUBSCRIBE = "intake:unsubscribe"


class BadToken(Exception):
    """Expired, tampered with, or made for another purpose."""


def sign(secret: str, purpose: str, subject: uuid.UUID, lifetime: dt.timedelta) -> str:
    """The JWT `jwt.encode` makes, with the claims encoded by msgspec: every submission signs one."""
    now = dt.datetime.now(dt.UTC)
    iat = int(now.timestamp())
    claims = {"sub": str(subject), "aud": purpose, "iat": iat, "exp": int((now + lifetime).timestamp())}
    return jwt.api_jws.encode(msgspec.json.encode(claims), secret, algorithm="HS256")


def verify(secret: str, purpose: str, token: str) -> uuid.UUID:
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], audience=purpose)
        return uuid.UUID(str(claims["sub"]))
    except (jwt.PyJWTError, KeyError, ValueError):
        raise BadToken(purpose) from None


def jwt_secret(settings: Settings) -> str:
    """JWT_SECRET, or in development one made once and kept in the data folder (all processes share it)."""
    if settings.auth.jwt_secret:
        return settings.auth.jwt_secret
    return _kept_secret(str(settings.app.data_dir / "jwt-secret"))


@lru_cache(maxsize=4)
def _kept_secret(location: str) -> str:
    path = Path(location)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = path.with_suffix(f".{secrets.token_hex(4)}")
        candidate.write_text(secrets.token_urlsafe(48))
        candidate.chmod(0o600)
        # A hard link either creates the file whole or fails because another process made it first.
        with contextlib.suppress(FileExistsError):
            os.link(candidate, path)
        candidate.unlink()
    return path.read_text().strip()
