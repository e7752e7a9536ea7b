"""Staff accounts: create, sign in (with lockout and rehash), change role, disable; token revocation."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import structlog
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from intake.db.base import new_id, utcnow
from intake.db.models import RevokedToken, StaffMember
from intake.problems import Conflict, FieldProblem, InvalidFields, NotFound
from intake.settings import AuthSettings
from intake.staff import audit
from intake.staff.passwords import hash_password, needs_rehash, password_problem, verify_password
from intake.text import clean_name, name_problem
from intake.vocabulary import ROLES

log = structlog.get_logger(__name__)


def _check(
    email: str | None, name: str | None, role: str | None, password: str | None
) -> tuple[str | None, list[FieldProblem]]:
    problems: list[FieldProblem] = []
    normalised = None
    if email is not None:
        try:
            normalised = validate_email(email.strip(), check_deliverability=False).normalized.lower()
        except EmailNotValidError as exc:
            problems.append(FieldProblem("email", f"Not a valid email address: {exc}"))
    if name is not None and not clean_name(name):
        problems.append(FieldProblem("name", "A name is required."))
    elif name is not None and (problem := name_problem(clean_name(name))):
        problems.append(FieldProblem("name", problem))
    if role is not None and role not in ROLES:
        problems.append(FieldProblem("role", f"Role must be one of {', '.join(ROLES)}."))
    if password is not None and (problem := password_problem(password)):
        problems.append(FieldProblem("password", problem))
    return normalised, problems


class StaffService:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: AuthSettings):
        self._sessionmaker = sessionmaker
        self._settings = settings

    async def create(
        self, *, email: str, name: str, role: str, password: str, actor_id: uuid.UUID | None = None
    ) -> StaffMember:
        normalised, problems = _check(email, name, role, password)
        if problems or normalised is None:
            raise InvalidFields(problems)
        member = StaffMember(
            id=new_id(),
            email=normalised,
            name=clean_name(name),
            role=role,
            password_hash=hash_password(password),
            disabled=False,
            failed_logins=0,
        )
        try:
            async with self._sessionmaker() as session, session.begin():
                session.add(member)
                audit.record(
                    session,
                    actor_id=actor_id,
                    action="staff.create",
                    target_staff_id=member.id,
                    fields=["email", "name", "role", "password"],
                )
        except IntegrityError:
            raise Conflict("A staff member with this email already exists.") from None
        return member

    async def authenticate(self, email: str, password: str) -> StaffMember | None:
        """The member if the password is right and the account may sign in; counts failures, locks."""
        key = email.strip().lower()
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            member = (
                await session.execute(select(StaffMember).where(StaffMember.email == key).with_for_update())
            ).scalar_one_or_none()
            ok = verify_password(member.password_hash if member else None, password)
            if member is None:
                return None
            if member.disabled or (member.locked_until is not None and member.locked_until > now):
                log.info(
                    "auth.refused",
                    staff_id=str(member.id),
                    reason="disabled" if member.disabled else "locked",
                )
                return None
            if not ok:
                member.failed_logins += 1
                if member.failed_logins >= self._settings.lockout_threshold:
                    member.locked_until = now + dt.timedelta(minutes=self._settings.lockout_minutes)
                    member.failed_logins = 0
                    log.warning("auth.locked", staff_id=str(member.id), minutes=self._settings.lockout_minutes)
                return None
            member.failed_logins = 0
            member.locked_until = None
            if needs_rehash(member.password_hash):
                member.password_hash = hash_password(password)
            return member

    async def active_member(self, staff_id: uuid.UUID, jti: str) -> StaffMember | None:
        """The token's member if the account is enabled and the token not revoked: one query per request."""
        revoked = select(RevokedToken.jti).where(RevokedToken.jti == jti).exists()
        stmt = select(StaffMember, revoked).where(StaffMember.id == staff_id)
        async with self._sessionmaker() as session:
            row = (await session.execute(stmt)).tuples().first()
        if row is None:
            return None
        member, revoked_already = row
        return None if revoked_already or member.disabled else member

    async def list(self) -> list[StaffMember]:
        async with self._sessionmaker() as session:
            return list((await session.execute(select(StaffMember).order_by(StaffMember.name))).scalars())

    async def update(self, staff_id: uuid.UUID, changes: dict[str, Any], *, actor_id: uuid.UUID) -> StaffMember:
        _, problems = _check(None, changes.get("name"), changes.get("role"), changes.get("password"))
        if staff_id == actor_id and (changes.get("disabled") or changes.get("role") not in (None, "admin")):
            problems.append(
                FieldProblem(
                    "role" if "role" in changes else "disabled",
                    "An admin cannot disable or demote themselves.",
                )
            )
        if problems:
            raise InvalidFields(problems)
        async with self._sessionmaker() as session, session.begin():
            member = await session.get(StaffMember, staff_id, with_for_update=True)
            if member is None:
                raise NotFound("staff member")
            for name, value in changes.items():
                if name == "password":
                    member.password_hash = hash_password(value)
                elif name == "name":
                    member.name = clean_name(value)
                else:
                    setattr(member, name, value)
            if changes.get("disabled") is False:
                member.failed_logins, member.locked_until = 0, None
            audit.record(session, actor_id=actor_id, action="staff.update", target_staff_id=staff_id, fields=changes)
        return member

    async def revoke(self, jti: str, expires_at: dt.datetime) -> None:
        async with self._sessionmaker() as session, session.begin():
            if await session.get(RevokedToken, jti) is None:
                session.add(RevokedToken(jti=jti, expires_at=expires_at))
