"""Staff accounts: create, sign in (with lockout, limits and rehash), change a password, role or state; tokens.

Sign-in counts a wrong password with one conditional `UPDATE … RETURNING` (never read, add one, write back),
so that concurrent guesses cannot slip past the lockout; the right password signs in only through another
conditional UPDATE that finds the account unlocked and enabled at that instant. The argon2 work runs off the
event loop (`intake.staff.passwords`), outside any transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import structlog
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import ColumnElement, and_, case, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from intake.db.base import new_id, utcnow
from intake.db.models import RevokedToken, StaffMember
from intake.problems import Conflict, FieldProblem, InvalidFields, NotFound
from intake.settings import AuthSettings
from intake.staff import audit
from intake.staff.passwords import hashed, needs_rehash, problem_of, verified
from intake.staff.throttle import LoginThrottle
from intake.text import clean_name, name_problem
from intake.vocabulary import ROLES

log = structlog.get_logger(__name__)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class TooManySignIns(Exception):
    """Too many sign-in attempts from this address or for this account in the last minute."""

    def __init__(self, retry_after: int):
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


def password_stamp(member: StaffMember) -> int:
    """When the member's password was last set, in microseconds since 1970 (0: not since the column came).

    Every token carries the stamp of its day, and stops working when the password changes. The token's `iat`
    cannot say this: it has whole seconds, and a token issued in the second of a change, before it, would
    live on (or one issued just after it would die)."""
    changed = member.password_changed_at
    return 0 if changed is None else (changed - _EPOCH) // dt.timedelta(microseconds=1)


def _check(email: str | None, name: str | None, role: str | None) -> tuple[str | None, list[FieldProblem]]:
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
    return normalised, problems


def _may_sign_in(now: dt.datetime) -> ColumnElement[bool]:
    return and_(
        StaffMember.disabled.is_(False),
        or_(StaffMember.locked_until.is_(None), StaffMember.locked_until <= now),
    )


class StaffService:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: AuthSettings):
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._throttle = LoginThrottle(
            settings.login_rate_limit_per_minute, settings.login_account_rate_limit_per_minute
        )

    async def create(
        self, *, email: str, name: str, role: str, password: str, actor_id: uuid.UUID | None = None
    ) -> StaffMember:
        normalised, problems = _check(email, name, role)
        if problem := await problem_of(password, normalised or email):
            problems.append(FieldProblem("password", problem))
        if problems or normalised is None:
            raise InvalidFields(problems)
        member = StaffMember(
            id=new_id(),
            email=normalised,
            name=clean_name(name),
            role=role,
            password_hash=await hashed(password),
            disabled=False,
            failed_logins=0,
            password_changed_at=utcnow(),
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

    async def authenticate(self, email: str, password: str, *, address: str = "") -> StaffMember | None:
        """The member if the password is right and the account may sign in now; counts failures, locks.

        Raises TooManySignIns when this address or this account has used its minute's attempts."""
        key = email.strip().lower()
        if (wait := self._throttle.attempt(address=address, account=key)) is not None:
            log.info("auth.throttled", seconds=wait)
            raise TooManySignIns(wait)
        async with self._sessionmaker() as session:
            member = (await session.execute(select(StaffMember).where(StaffMember.email == key))).scalar_one_or_none()
        # Verified even for an unknown, locked or disabled account: every refusal takes the same time.
        ok = await verified(member.password_hash if member else None, password)
        if member is None:
            return None
        if not ok:
            await self._count_failure(member.id)
            return None
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            # Signs in only if no concurrent guess locked the account since it was read (nor an admin disabled it).
            signed_in = (
                await session.execute(
                    update(StaffMember)
                    .where(StaffMember.id == member.id, _may_sign_in(now))
                    .values(failed_logins=0, locked_until=None)
                    .returning(StaffMember.id)
                    .execution_options(synchronize_session=False)
                )
            ).first()
        if signed_in is None:
            log.info("auth.refused", staff_id=str(member.id), reason="disabled" if member.disabled else "locked")
            return None
        member.failed_logins = 0
        if needs_rehash(member.password_hash):
            await self._rehash(member, password)
        return member

    async def _count_failure(self, staff_id: uuid.UUID) -> None:
        """One wrong password, counted in the database in one statement; the one that reaches the threshold
        locks the account (and starts the count again). An account locked or disabled counts nothing."""
        now = utcnow()
        reaches = StaffMember.failed_logins + 1 >= self._settings.lockout_threshold
        until = now + dt.timedelta(minutes=self._settings.lockout_minutes)
        async with self._sessionmaker() as session, session.begin():
            locked = (
                await session.execute(
                    update(StaffMember)
                    .where(StaffMember.id == staff_id, _may_sign_in(now))
                    .values(
                        failed_logins=case((reaches, 0), else_=StaffMember.failed_logins + 1),
                        locked_until=case((reaches, until), else_=StaffMember.locked_until),
                    )
                    .returning(StaffMember.locked_until)
                    .execution_options(synchronize_session=False)
                )
            ).scalar_one_or_none()
        if locked is not None and locked > now:
            log.warning("auth.locked", staff_id=str(staff_id), minutes=self._settings.lockout_minutes)

    async def _rehash(self, member: StaffMember, password: str) -> None:
        new_hash = await hashed(password)
        async with self._sessionmaker() as session, session.begin():
            # Only over the hash that was verified: a password changed meanwhile stays changed.
            await session.execute(
                update(StaffMember)
                .where(StaffMember.id == member.id, StaffMember.password_hash == member.password_hash)
                .values(password_hash=new_hash)
                .execution_options(synchronize_session=False)
            )
        member.password_hash = new_hash

    async def active_member(self, staff_id: uuid.UUID, jti: str, stamp: int = 0) -> StaffMember | None:
        """The token's member if the account is enabled, the token not revoked, and the password not changed
        since the token was issued (`stamp`, see `password_stamp`): one query per request."""
        revoked = select(RevokedToken.jti).where(RevokedToken.jti == jti).exists()
        stmt = select(StaffMember, revoked).where(StaffMember.id == staff_id)
        async with self._sessionmaker() as session:
            row = (await session.execute(stmt)).tuples().first()
        if row is None:
            return None
        member, revoked_already = row
        if revoked_already or member.disabled or password_stamp(member) != stamp:
            return None
        return member

    async def list(self) -> list[StaffMember]:
        async with self._sessionmaker() as session:
            return list((await session.execute(select(StaffMember).order_by(StaffMember.name))).scalars())

    async def update(self, staff_id: uuid.UUID, changes: dict[str, Any], *, actor_id: uuid.UUID) -> StaffMember:
        _, problems = _check(None, changes.get("name"), changes.get("role"))
        if staff_id == actor_id and (changes.get("disabled") or changes.get("role") not in (None, "admin")):
            problems.append(
                FieldProblem(
                    "role" if "role" in changes else "disabled",
                    "An admin cannot disable or demote themselves.",
                )
            )
        new_hash = None
        if "password" in changes:
            async with self._sessionmaker() as session:
                email = (
                    await session.execute(select(StaffMember.email).where(StaffMember.id == staff_id))
                ).scalar_one_or_none()
            if email is None:
                raise NotFound("staff member")
            if problem := await problem_of(changes["password"], email):
                problems.append(FieldProblem("password", problem))
            elif not problems:
                new_hash = await hashed(changes["password"])
        if problems:
            raise InvalidFields(problems)
        async with self._sessionmaker() as session, session.begin():
            member = await session.get(StaffMember, staff_id, with_for_update=True)
            if member is None:
                raise NotFound("staff member")
            for name, value in changes.items():
                if name == "password":
                    # Every token issued before this moment stops working (see password_stamp).
                    member.password_hash, member.password_changed_at = str(new_hash), utcnow()
                elif name == "name":
                    member.name = clean_name(value)
                else:
                    setattr(member, name, value)
            if changes.get("disabled") is False:
                member.failed_logins, member.locked_until = 0, None
            audit.record(session, actor_id=actor_id, action="staff.update", target_staff_id=staff_id, fields=changes)
        return member

    async def change_own_password(self, member: StaffMember, current: str, new: str) -> StaffMember:
        """The signed-in member sets a new password, giving the current one; every earlier token stops working.

        A wrong current password counts as a failed sign-in (a stolen token must not let anyone try
        passwords freely)."""
        async with self._sessionmaker() as session:
            stored = (
                await session.execute(select(StaffMember.password_hash).where(StaffMember.id == member.id))
            ).scalar_one_or_none()
        if stored is None:
            raise NotFound("staff member")
        if not await verified(stored, current):
            await self._count_failure(member.id)
            raise InvalidFields([FieldProblem("current_password", "The current password is not right.")])
        if problem := await problem_of(new, member.email):
            raise InvalidFields([FieldProblem("new_password", problem)])
        new_hash = await hashed(new)
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            changed = (
                await session.execute(
                    update(StaffMember)
                    .where(StaffMember.id == member.id, StaffMember.password_hash == stored, _may_sign_in(now))
                    .values(password_hash=new_hash, password_changed_at=now, failed_logins=0)
                    .returning(StaffMember.id)
                    .execution_options(synchronize_session=False)
                )
            ).first()
            if changed is None:
                raise Conflict("The account changed meanwhile (locked, disabled or a new password): sign in again.")
            audit.record(
                session, actor_id=member.id, action="staff.password", target_staff_id=member.id, fields=["password"]
            )
        member.password_hash, member.password_changed_at, member.failed_logins = new_hash, now, 0
        return member

    async def revoke(self, jti: str, expires_at: dt.datetime) -> None:
        async with self._sessionmaker() as session, session.begin():
            if await session.get(RevokedToken, jti) is None:
                session.add(RevokedToken(jti=jti, expires_at=expires_at))
