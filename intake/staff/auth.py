"""Bearer-token sign-in (Litestar's JWTAuth): who the caller is, and whether their token was revoked (by logout,
or by a password change)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from litestar.connection import ASGIConnection
from litestar.security.jwt import JWTAuth, Token

from intake.db.models import StaffMember
from intake.settings import Settings
from intake.staff.accounts import StaffService, password_stamp
from intake.tokens import jwt_secret


def build_jwt_auth(settings: Settings, staff: StaffService) -> JWTAuth[StaffMember, Token]:
    async def retrieve_user(token: Token, _: ASGIConnection[Any, Any, Any, Any]) -> StaffMember | None:
        # The revocation check rides along in the same query (see active_member).
        try:
            staff_id = uuid.UUID(token.sub)
        except ValueError:
            return None
        if token.jti is None:
            return None
        stamp = token.extras.get(PASSWORD_STAMP_CLAIM, 0)
        if not isinstance(stamp, int):
            return None
        return await staff.active_member(staff_id, str(token.jti), stamp)

    return JWTAuth[StaffMember, Token](
        token_secret=jwt_secret(settings),
        retrieve_user_handler=retrieve_user,
        default_token_expiration=dt.timedelta(minutes=settings.auth.access_token_minutes),
        exclude=["^/schema"],
        exclude_opt_key="public",
    )


PASSWORD_STAMP_CLAIM = "pwd_at"  # noqa: S105 - a claim name, not a secret
"""When the member's password was set, as the token was issued (see `password_stamp`): a password change,
by the person or by an admin, ends every token issued before it."""


class TokenIssuer:
    """Issues the bearer tokens that `JWTAuth` checks: subject, unique id (for logout), role, password stamp."""

    def __init__(self, jwt_auth: JWTAuth[StaffMember, Token]):
        self._jwt_auth = jwt_auth

    @property
    def lifetime(self) -> dt.timedelta:
        return self._jwt_auth.default_token_expiration

    def issue(self, member: StaffMember) -> str:
        return self._jwt_auth.create_token(
            identifier=str(member.id),
            token_unique_jwt_id=uuid.uuid4().hex,
            token_extras={"role": member.role, PASSWORD_STAMP_CLAIM: password_stamp(member)},
        )
