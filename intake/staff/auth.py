"""Bearer-token sign-in (Litestar's JWTAuth): who the caller is, and whether their token was revoked."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import uuid
from pathlib import Path
from typing import Any

from litestar.connection import ASGIConnection
from litestar.security.jwt import JWTAuth, Token

from intake.db.models import StaffMember
from intake.settings import Settings
from intake.staff.accounts import StaffService


def jwt_secret(settings: Settings) -> str:
    """JWT_SECRET, or in development one made once and kept in the data folder (all processes share it)."""
    if settings.auth.jwt_secret:
        return settings.auth.jwt_secret
    path: Path = settings.app.data_dir / "jwt-secret"
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


def build_jwt_auth(settings: Settings, staff: StaffService) -> JWTAuth[StaffMember, Token]:
    async def retrieve_user(token: Token, _: ASGIConnection[Any, Any, Any, Any]) -> StaffMember | None:
        try:
            staff_id = uuid.UUID(token.sub)
        except ValueError:
            return None
        return await staff.active_member(staff_id)

    async def revoked(token: Token, _: ASGIConnection[Any, Any, Any, Any]) -> bool:
        return token.jti is None or await staff.is_revoked(str(token.jti))

    return JWTAuth[StaffMember, Token](
        token_secret=jwt_secret(settings),
        retrieve_user_handler=retrieve_user,
        revoked_token_handler=revoked,
        default_token_expiration=dt.timedelta(minutes=settings.auth.access_token_minutes),
        exclude=["^/schema"],
        exclude_opt_key="public",
    )


class TokenIssuer:
    """Issues the bearer tokens that `JWTAuth` checks: subject, unique id (for logout), role."""

    def __init__(self, jwt_auth: JWTAuth[StaffMember, Token]):
        self._jwt_auth = jwt_auth

    @property
    def lifetime(self) -> dt.timedelta:
        return self._jwt_auth.default_token_expiration

    def issue(self, member: StaffMember) -> str:
        return self._jwt_auth.create_token(
            identifier=str(member.id),
            token_unique_jwt_id=uuid.uuid4().hex,
            token_extras={"role": member.role},
        )
