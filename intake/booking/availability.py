"""Admin-set availability: clinicians' weekly hours per location, exceptions, and each location's timing."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from intake.booking.schemas import (
    LOCATIONS,
    ExceptionIn,
    ExceptionOut,
    LocationSettingsIn,
    LocationSettingsOut,
    RuleIn,
    RuleOut,
)
from intake.booking.slots import DEFAULT_BUFFER_MINUTES, DEFAULT_SLOT_MINUTES
from intake.db.base import new_id, utcnow
from intake.db.models import AvailabilityException, AvailabilityRule, LocationSettings, StaffMember
from intake.instants import instant
from intake.problems import Conflict, FieldProblem, InvalidFields, NotFound
from intake.staff import audit
from intake.staff.schemas import StaffRef


def _hhmm(value: dt.time) -> str:
    return value.strftime("%H:%M")


def aware(value: dt.datetime, field: str) -> dt.datetime:
    """A moment in UTC; a time without an offset, or in years no clinic means, is refused (422 naming `field`)."""
    return instant(value, field)


async def clinician(session: AsyncSession, staff_id: uuid.UUID, field: str) -> StaffMember:
    """The active clinician with this id, or 422 naming `field`."""
    member = await session.get(StaffMember, staff_id)
    if member is None or member.disabled or member.role != "clinician":
        raise InvalidFields([FieldProblem(field, "No active clinician has this id.")])
    return member


class AvailabilityService:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]):
        self._sessionmaker = sessionmaker

    # --- weekly rules -----------------------------------------------------------------------------

    async def list_rules(self, *, staff_id: uuid.UUID | None, location: str | None) -> list[RuleOut]:
        stmt = select(AvailabilityRule, StaffMember.name).join(StaffMember, StaffMember.id == AvailabilityRule.staff_id)
        if staff_id is not None:
            stmt = stmt.where(AvailabilityRule.staff_id == staff_id)
        if location is not None:
            stmt = stmt.where(AvailabilityRule.location == location)
        stmt = stmt.order_by(AvailabilityRule.weekday, AvailabilityRule.start_time, AvailabilityRule.location)
        async with self._sessionmaker() as session:
            rows = (await session.execute(stmt)).all()
        return [_rule_out(rule, name) for rule, name in rows]

    async def create_rule(self, *, rule: RuleIn, actor_id: uuid.UUID) -> RuleOut:
        start, end = dt.time.fromisoformat(rule.start_time), dt.time.fromisoformat(rule.end_time)
        if end <= start:
            raise InvalidFields([FieldProblem("end_time", "The end time must be after the start time.")])
        async with self._sessionmaker() as session, session.begin():
            member = await clinician(session, rule.staff_id, "staff_id")
            # Hours at two locations may overlap (a clinician at the clinic who also takes virtual calls:
            # a booking at either blocks the other); the same hours twice at one location are a mistake.
            overlapping = (
                await session.execute(
                    select(AvailabilityRule.id).where(
                        AvailabilityRule.staff_id == member.id,
                        AvailabilityRule.location == rule.location,
                        AvailabilityRule.weekday == rule.weekday,
                        AvailabilityRule.start_time < end,
                        AvailabilityRule.end_time > start,
                    )
                )
            ).scalar()
            if overlapping is not None:
                raise Conflict(
                    "These hours overlap hours the clinician already has at this location on that weekday.",
                    overlapping_rule_id=str(overlapping),
                )
            row = AvailabilityRule(
                id=new_id(),
                created_at=utcnow(),
                staff_id=member.id,
                location=rule.location,
                weekday=rule.weekday,
                start_time=start,
                end_time=end,
            )
            session.add(row)
            audit.record(
                session,
                actor_id=actor_id,
                action="availability.rule.create",
                target_staff_id=member.id,
                fields=["location", "weekday", "start_time", "end_time"],
            )
        return _rule_out(row, member.name)

    async def delete_rule(self, *, rule_id: uuid.UUID, actor_id: uuid.UUID) -> None:
        """Existing bookings stay; only new slots are no longer offered."""
        async with self._sessionmaker() as session, session.begin():
            row = await session.get(AvailabilityRule, rule_id)
            if row is None:
                raise NotFound("availability rule")
            await session.delete(row)
            audit.record(session, actor_id=actor_id, action="availability.rule.delete", target_staff_id=row.staff_id)

    # --- exceptions -------------------------------------------------------------------------------

    async def list_exceptions(self, *, at_from: dt.datetime | None, at_to: dt.datetime | None) -> list[ExceptionOut]:
        stmt = select(AvailabilityException)
        if at_from is not None:
            stmt = stmt.where(AvailabilityException.ends_at > aware(at_from, "from"))
        if at_to is not None:
            stmt = stmt.where(AvailabilityException.starts_at < aware(at_to, "to"))
        async with self._sessionmaker() as session:
            rows = (await session.execute(stmt.order_by(AvailabilityException.starts_at))).scalars().all()
        return [_exception_out(row) for row in rows]

    async def create_exception(self, *, exception: ExceptionIn, actor_id: uuid.UUID) -> ExceptionOut:
        starts_at, ends_at = aware(exception.starts_at, "starts_at"), aware(exception.ends_at, "ends_at")
        if ends_at <= starts_at:
            raise InvalidFields([FieldProblem("ends_at", "The end must be after the start.")])
        async with self._sessionmaker() as session, session.begin():
            if exception.staff_id is not None:
                await clinician(session, exception.staff_id, "staff_id")
            row = AvailabilityException(
                id=new_id(),
                created_at=utcnow(),
                staff_id=exception.staff_id,
                location=exception.location,
                starts_at=starts_at,
                ends_at=ends_at,
                reason=exception.reason,
            )
            session.add(row)
            audit.record(
                session,
                actor_id=actor_id,
                action="availability.exception.create",
                target_staff_id=exception.staff_id,
                fields=[name for name in ("staff_id", "location", "reason") if getattr(exception, name) is not None]
                + ["starts_at", "ends_at"],
            )
        return _exception_out(row)

    async def delete_exception(self, *, exception_id: uuid.UUID, actor_id: uuid.UUID) -> None:
        async with self._sessionmaker() as session, session.begin():
            row = await session.get(AvailabilityException, exception_id)
            if row is None:
                raise NotFound("availability exception")
            await session.delete(row)
            audit.record(
                session, actor_id=actor_id, action="availability.exception.delete", target_staff_id=row.staff_id
            )

    # --- location timing --------------------------------------------------------------------------

    async def location_settings(self, *, location: str) -> LocationSettingsOut:
        _known(location)
        async with self._sessionmaker() as session:
            row = await session.get(LocationSettings, location)
        if row is None:
            return LocationSettingsOut(location, DEFAULT_SLOT_MINUTES, DEFAULT_BUFFER_MINUTES)
        return LocationSettingsOut(location, row.slot_minutes, row.buffer_minutes)

    async def put_location_settings(
        self, *, location: str, values: LocationSettingsIn, actor_id: uuid.UUID
    ) -> LocationSettingsOut:
        """Applies to slots offered from now on; booked consultations keep their times."""
        _known(location)
        async with self._sessionmaker() as session, session.begin():
            row = await session.get(LocationSettings, location, with_for_update=True)
            if row is None:
                row = LocationSettings(location=location)
                session.add(row)
            row.slot_minutes, row.buffer_minutes = values.slot_minutes, values.buffer_minutes
            audit.record(
                session,
                actor_id=actor_id,
                action="availability.settings.update",
                fields=["slot_minutes", "buffer_minutes"],
            )
        return LocationSettingsOut(location, values.slot_minutes, values.buffer_minutes)


def _known(location: str) -> None:
    if location not in LOCATIONS:
        raise NotFound("location")


def _rule_out(rule: AvailabilityRule, staff_name: str) -> RuleOut:
    return RuleOut(
        id=rule.id,
        staff=StaffRef(id=rule.staff_id, name=staff_name),
        location=rule.location,
        weekday=rule.weekday,
        start_time=_hhmm(rule.start_time),
        end_time=_hhmm(rule.end_time),
        created_at=rule.created_at,
    )


def _exception_out(row: AvailabilityException) -> ExceptionOut:
    return ExceptionOut(
        id=row.id,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        staff_id=row.staff_id,
        location=row.location,
        reason=row.reason,
        created_at=row.created_at,
    )


__all__ = ["AvailabilityService", "aware", "clinician"]
