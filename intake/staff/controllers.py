"""HTTP routes of staff sign-in, staff management (admin) and the audit trail (admin)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from litestar import Controller, Request, get, patch, post
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.security.jwt import Token

from intake.db.models import StaffMember
from intake.error_shape import JSON_BODY, documented
from intake.instants import optional_instants
from intake.staff.accounts import StaffService, TooManySignIns
from intake.staff.audit import AuditService
from intake.staff.auth import TokenIssuer
from intake.staff.guards import STAFF, admin_only
from intake.staff.schemas import (
    AuditOut,
    AuditPage,
    LoginIn,
    PasswordChangeIn,
    StaffCreate,
    StaffOut,
    StaffPatch,
    TokenOut,
)

Limit = Annotated[int, QueryParameter(ge=1, le=100, description="page size, at most 100")]


def staff_out(member: StaffMember) -> StaffOut:
    return StaffOut(
        id=member.id,
        email=member.email,
        name=member.name,
        role=member.role,
        disabled=member.disabled,
        locked_until=member.locked_until,
        created_at=member.created_at,
    )


def _token(token_issuer: TokenIssuer, member: StaffMember) -> TokenOut:
    return TokenOut(
        access_token=token_issuer.issue(member),
        token_type="bearer",  # noqa: S106 - the OAuth token type, not a secret
        expires_in=int(token_issuer.lifetime.total_seconds()),
    )


class AuthController(Controller):
    path = "/api/auth"
    tags = ["auth"]

    @post(
        "/login",
        operation_id="login",
        summary="Sign in: a short-lived bearer token",
        opt={"public": True},
        status_code=200,
        responses=documented(401, 429, *JSON_BODY),
    )
    async def login(
        self,
        data: JSONBody[LoginIn],
        request: Request[Any, Any, Any],
        staff_service: NamedDependency[StaffService],
        token_issuer: NamedDependency[TokenIssuer],
    ) -> TokenOut:
        address = request.client.host if request.client else ""
        try:
            member = await staff_service.authenticate(data.email, data.password, address=address)
        except TooManySignIns as exc:
            raise TooManyRequestsException(headers={"Retry-After": str(exc.retry_after)}) from None
        if member is None:
            # One answer for a wrong password, an unknown email, a locked or disabled account.
            raise NotAuthorizedException("Wrong email or password, or the account is locked or disabled.")
        return _token(token_issuer, member)

    @post(
        "/password",
        operation_id="changeOwnPassword",
        summary="Change your password: every earlier token stops working, this answer carries a new one",
        status_code=200,
        security=STAFF,
        responses=documented(401, 429, *JSON_BODY),
    )
    async def change_password(
        self,
        data: JSONBody[PasswordChangeIn],
        request: Request[StaffMember, Token, Any],
        staff_service: NamedDependency[StaffService],
        token_issuer: NamedDependency[TokenIssuer],
    ) -> TokenOut:
        member = await staff_service.change_own_password(request.user, data.current_password, data.new_password)
        return _token(token_issuer, member)

    @post(
        "/logout",
        operation_id="logout",
        summary="Revoke the token this request carries",
        status_code=204,
        security=STAFF,
        responses=documented(401),
    )
    async def logout(
        self, request: Request[StaffMember, Token, Any], staff_service: NamedDependency[StaffService]
    ) -> None:
        token = request.auth
        await staff_service.revoke(str(token.jti), token.exp)

    @get("/me", operation_id="me", summary="Who this token belongs to", security=STAFF, responses=documented(401))
    async def me(self, request: Request[StaffMember, Token, Any]) -> StaffOut:
        return staff_out(request.user)


class StaffController(Controller):
    path = "/api/staff"
    tags = ["staff"]
    guards = [admin_only]
    security = STAFF

    @get("/", operation_id="listStaff", summary="Every staff account (admin)", responses=documented(401, 403))
    async def list_staff(self, staff_service: NamedDependency[StaffService]) -> list[StaffOut]:
        return [staff_out(m) for m in await staff_service.list()]

    @post(
        "/",
        operation_id="createStaff",
        summary="Create a staff account (admin)",
        responses=documented(401, 403, 409, *JSON_BODY),
    )
    async def create_staff(
        self,
        data: JSONBody[StaffCreate],
        request: Request[StaffMember, Token, Any],
        staff_service: NamedDependency[StaffService],
    ) -> StaffOut:
        member = await staff_service.create(
            email=data.email, name=data.name, role=data.role, password=data.password, actor_id=request.user.id
        )
        return staff_out(member)

    @patch(
        "/{staff_id:uuid}",
        operation_id="updateStaff",
        summary="Change a name, role, password; disable (admin)",
        responses=documented(401, 403, 404, *JSON_BODY),
    )
    async def update_staff(
        self,
        staff_id: FromPath[uuid.UUID],
        data: JSONBody[StaffPatch],
        request: Request[StaffMember, Token, Any],
        staff_service: NamedDependency[StaffService],
    ) -> StaffOut:
        return staff_out(await staff_service.update(staff_id, data.changes(), actor_id=request.user.id))


class AuditController(Controller):
    path = "/api/audit"
    tags = ["audit"]
    guards = [admin_only]
    security = STAFF

    @get(
        "/",
        operation_id="listAudit",
        summary="The audit trail, newest first (admin)",
        responses=documented(401, 403, 422),
    )
    async def list_audit(
        self,
        request: Request[StaffMember, Token, Any],
        audit_service: NamedDependency[AuditService],
        staff_id: FromQuery[uuid.UUID | None] = None,
        lead_id: FromQuery[uuid.UUID | None] = None,
        action: FromQuery[str | None] = None,
        at_from: Annotated[dt.datetime | None, QueryParameter(name="from")] = None,
        at_to: Annotated[dt.datetime | None, QueryParameter(name="to")] = None,
        cursor: FromQuery[str | None] = None,
        limit: Limit = 50,
    ) -> AuditPage:
        moments = optional_instants(**{"from": at_from, "to": at_to})
        rows, next_cursor = await audit_service.list(
            actor_id=request.user.id,
            staff_id=staff_id,
            lead_id=lead_id,
            action=action,
            at_from=moments["from"],
            at_to=moments["to"],
            after=cursor,
            limit=limit,
        )
        items = [
            AuditOut(
                id=r.id,
                at=r.at,
                actor_id=r.actor_id,
                action=r.action,
                lead_id=r.lead_id,
                target_staff_id=r.target_staff_id,
                fields=list(r.fields),
                request_id=r.request_id,
            )
            for r in rows
        ]
        return AuditPage(items=items, next_cursor=next_cursor)
