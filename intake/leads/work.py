"""Staff work on one lead: the detail and its timeline, status (through the lifecycle), assignment, notes. Audited."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from intake.db.base import new_id, utcnow
from intake.db.models import (
    Booking,
    Consent,
    Delivery,
    Lead,
    LeadEvent,
    LeadNote,
    Screening,
    StaffMember,
)
from intake.leads import lifecycle
from intake.leads.lifecycle import allowed_next
from intake.leads.schemas import (
    ConsentOut,
    ContactOut,
    LeadDetail,
    LeadPatch,
    NoteIn,
    NoteOut,
    ReasonOut,
    ScreeningOut,
    TimelineItem,
)
from intake.problems import Conflict, FieldProblem, InvalidFields, NotFound
from intake.staff import audit
from intake.staff.schemas import StaffRef
from intake.vocabulary import CAN_SEE_ANSWERS, CLOSED_REASONS, LEAD_STATUSES, LeadStatus


class LeadWork:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]):
        self._sessionmaker = sessionmaker

    async def detail(self, lead_id: uuid.UUID, *, actor: StaffMember) -> LeadDetail:
        sees_answers = actor.role in CAN_SEE_ANSWERS
        async with self._sessionmaker() as session, session.begin():
            lead = await session.get(Lead, lead_id)
            if lead is None:
                raise NotFound("lead")
            body = await self._detail_body(session, lead, sees_answers)
            audit.record(
                session,
                actor_id=actor.id,
                action="lead.read",
                lead_id=lead.id,
                fields=[
                    "contact",
                    "consent",
                    "screenings",
                    "timeline",
                    *(["answers"] if sees_answers else []),
                ],
            )
        return body

    async def _detail_body(self, session: AsyncSession, lead: Lead, sees_answers: bool) -> LeadDetail:
        screenings = (
            await session.execute(
                select(Screening).where(Screening.lead_id == lead.id).order_by(Screening.created_at.desc())
            )
        ).scalars()
        consent = (await session.execute(Consent.latest_of(lead.id))).scalar_one_or_none()
        staff_names = dict((await session.execute(select(StaffMember.id, StaffMember.name))).tuples().all())
        timeline: list[TimelineItem] = []
        for event in (await session.execute(select(LeadEvent).where(LeadEvent.lead_id == lead.id))).scalars():
            timeline.append(
                TimelineItem(
                    at=event.created_at,
                    kind=event.kind,
                    from_=event.from_value,
                    to=event.to_value,
                    reason=event.reason,
                    by=staff_names.get(event.actor_id) if event.actor_id else "system",
                )
            )
        for note in (await session.execute(select(LeadNote).where(LeadNote.lead_id == lead.id))).scalars():
            timeline.append(
                TimelineItem(
                    at=note.created_at,
                    kind="note",
                    id=note.id,
                    body=note.body,
                    by=staff_names.get(note.author_id),
                )
            )
        for delivery in (await session.execute(select(Delivery).where(Delivery.lead_id == lead.id))).scalars():
            timeline.append(
                TimelineItem(
                    at=delivery.created_at,
                    kind="email" if delivery.channel == "email" else "webhook",
                    id=delivery.id,
                    message=delivery.kind,
                    state=delivery.status,
                    attempts=delivery.attempts,
                    sent_at=delivery.sent_at,
                    last_error=delivery.last_error,
                )
            )
        timeline.extend(await self._extra_timeline(session, lead))
        timeline.sort(key=lambda item: item.at, reverse=True)
        return LeadDetail(
            id=lead.id,
            status=lead.status,
            closed_reason=lead.closed_reason,
            created_at=lead.created_at,
            updated_at=lead.updated_at,
            tier=lead.tier,
            route=lead.route,
            score=lead.score,
            contact=ContactOut(
                first_name=lead.first_name,
                last_name=lead.last_name,
                email=lead.email,
                phone=lead.phone,
                preferred_contact=lead.preferred_contact,
                location=lead.location,
                zip=lead.zip,
                language=lead.language,
            ),
            consent=None
            if consent is None
            else ConsentOut(
                privacy_notice_version=consent.privacy_notice_version,
                privacy_accepted_at=consent.privacy_accepted_at,
                email_followup=consent.email_followup,
                sms=consent.sms,
            ),
            # The foreign key keeps the assignee among the staff members read above.
            assigned_to=StaffRef(id=lead.assigned_to_id, name=staff_names[lead.assigned_to_id])
            if lead.assigned_to_id
            else None,
            last_contact_at=lead.last_contact_at,
            next_follow_up_at=lead.next_follow_up_at,
            screenings=[
                ScreeningOut(
                    id=s.id,
                    created_at=s.created_at,
                    language=s.language,
                    rule_set_version=s.rule_set_version,
                    tier=s.tier,
                    route=s.route,
                    score=s.score,
                    reasons=[ReasonOut(code=r["code"], text=r["text"]) for r in s.reasons],
                    rescored_from_id=s.rescored_from_id,
                    answers=s.answers if sees_answers else msgspec.UNSET,
                )
                for s in screenings
            ],
            timeline=timeline,
        )

    async def _extra_timeline(self, session: AsyncSession, lead: Lead) -> list[TimelineItem]:
        """Timeline entries of other domains: the lead's bookings (a move shows as a cancelled one and a new one)."""
        bookings = (await session.execute(select(Booking).where(Booking.lead_id == lead.id))).scalars()
        return [
            TimelineItem(
                at=booking.created_at,
                kind="booking",
                id=booking.id,
                starts_at=booking.starts_at,
                location=booking.location,
                status=booking.status,
            )
            for booking in bookings
        ]

    async def update(self, lead_id: uuid.UUID, patch: LeadPatch, *, actor: StaffMember) -> LeadDetail:
        changed = [name for name in patch.__struct_fields__ if getattr(patch, name) is not msgspec.UNSET]
        if not changed:
            raise InvalidFields([FieldProblem("body", "Nothing to change: send status, closed_reason or assigned_to.")])
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            lead = await session.get(Lead, lead_id, with_for_update=True)
            if lead is None:
                raise NotFound("lead")
            if patch.status is not msgspec.UNSET:
                await self._move(session, lead, patch, actor, now)
            elif patch.closed_reason is not msgspec.UNSET:
                raise InvalidFields([FieldProblem("closed_reason", "A closing reason goes with status `closed`.")])
            if patch.assigned_to is not msgspec.UNSET:
                await self._assign(session, lead, patch.assigned_to, actor, now)
            lead.updated_at = now
            audit.record(session, actor_id=actor.id, action="lead.update", lead_id=lead.id, fields=changed)
            await session.flush()
            await session.refresh(lead)
            body = await self._detail_body(session, lead, actor.role in CAN_SEE_ANSWERS)
        return body

    async def _move(
        self, session: AsyncSession, lead: Lead, patch: LeadPatch, actor: StaffMember, now: dt.datetime
    ) -> None:
        target = str(patch.status)
        if target not in LEAD_STATUSES:
            raise InvalidFields([FieldProblem("status", f"Status must be one of {', '.join(LEAD_STATUSES)}.")])
        reason = patch.closed_reason if patch.closed_reason is not msgspec.UNSET else None
        if target == LeadStatus.CLOSED and reason not in CLOSED_REASONS:
            raise InvalidFields(
                [FieldProblem("closed_reason", f"Closing needs a reason: one of {', '.join(CLOSED_REASONS)}.")]
            )
        if target != LeadStatus.CLOSED and reason is not None:
            raise InvalidFields([FieldProblem("closed_reason", "A closing reason goes with status `closed`.")])
        allowed = allowed_next(lead.status)
        if target not in allowed:
            raise Conflict(
                f"A lead that is {lead.status} cannot move to {target}."
                + (f" Allowed: {', '.join(allowed)}." if allowed else " It is no longer open."),
                allowed=list(allowed),
            )
        await lifecycle.move(session, lead, target, actor_id=actor.id, now=now, reason=reason)
        if target == LeadStatus.CONTACTED:
            lead.last_contact_at = now

    async def _assign(
        self,
        session: AsyncSession,
        lead: Lead,
        staff_id: uuid.UUID | None,
        actor: StaffMember,
        now: dt.datetime,
    ) -> None:
        if staff_id is not None:
            member = await session.get(StaffMember, staff_id)
            if member is None or member.disabled:
                raise InvalidFields([FieldProblem("assigned_to", "No active staff member has this id.")])
        if lead.assigned_to_id == staff_id:
            return
        session.add(
            LeadEvent(
                id=new_id(),
                created_at=now,
                lead_id=lead.id,
                actor_id=actor.id,
                kind="assigned",
                from_value=str(lead.assigned_to_id) if lead.assigned_to_id else None,
                to_value=str(staff_id) if staff_id else None,
            )
        )
        lead.assigned_to_id = staff_id

    async def add_note(self, lead_id: uuid.UUID, note: NoteIn, *, actor: StaffMember) -> NoteOut:
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            lead = await session.get(Lead, lead_id, with_for_update=True)
            if lead is None:
                raise NotFound("lead")
            row = LeadNote(id=new_id(), created_at=now, lead_id=lead.id, author_id=actor.id, body=note.body.strip())
            session.add(row)
            if note.contact_made:
                lead.last_contact_at = now
            audit.record(
                session,
                actor_id=actor.id,
                action="note.create",
                lead_id=lead.id,
                fields=["body", *(["last_contact_at"] if note.contact_made else [])],
            )
        return NoteOut(
            id=row.id,
            lead_id=lead_id,
            author=StaffRef(id=actor.id, name=actor.name),
            body=row.body,
            created_at=now,
        )


__all__ = ["LeadWork"]
