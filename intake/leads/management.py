"""Staff work on leads: the list and triage queue (keyset pages), detail, status, notes, export. Audited."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import ColumnElement, Select, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from intake import keyset as cursors
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
    LeadFilters,
    LeadPage,
    LeadPatch,
    LeadRow,
    NoteIn,
    NoteOut,
    QueuePage,
    QueueRow,
    Sort,
)
from intake.problems import Conflict, FieldProblem, InvalidFields, NotFound
from intake.screening import Tier
from intake.settings import Settings
from intake.staff import audit
from intake.staff.schemas import StaffRef
from intake.vocabulary import CAN_SEE_ANSWERS, CLOSED_REASONS, LEAD_STATUSES, LeadStatus

_TIER_RANK = {tier.value: tier.rank for tier in Tier}
_Assignee = aliased(StaffMember)
_ROW_COLUMNS = (
    Lead.id,
    Lead.first_name,
    Lead.last_name,
    Lead.tier,
    Lead.route,
    Lead.score,
    Lead.status,
    Lead.location,
    Lead.preferred_contact,
    Lead.created_at,
    Lead.urgency,
    Lead.assigned_to_id,
    _Assignee.name.label("assignee_name"),
    Lead.last_contact_at,
    Lead.next_follow_up_at,
)


def _search_term(q: str) -> str:
    term = q.strip().lower()
    digits = "".join(ch for ch in term if ch.isdigit())
    if digits and len(digits) >= 4 and all(ch.isdigit() or ch in " +-()." for ch in term):
        term = digits  # a phone number typed any way matches the stored digits
    if len(term) < 3:
        raise InvalidFields([FieldProblem("q", "Search needs at least 3 characters.")])
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _assignee(row: Any) -> StaffRef | None:
    return StaffRef(id=row.assigned_to_id, name=row.assignee_name) if row.assigned_to_id else None


def next_business_day(moment: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The same clock time one business day later in the clinic's zone (Friday → Monday)."""
    local = moment.astimezone(zone) + dt.timedelta(days=1)
    while local.weekday() >= 5:
        local += dt.timedelta(days=1)
    return local.astimezone(dt.UTC)


class LeadService:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings):
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._zone = ZoneInfo(settings.clinic.timezone)

    # --- lists ----------------------------------------------------------------------------------

    def _filtered(self, filters: LeadFilters) -> Select[Any]:
        stmt = select(*_ROW_COLUMNS).outerjoin(_Assignee, _Assignee.id == Lead.assigned_to_id)
        return stmt.where(*self._conditions(filters))

    def _conditions(self, filters: LeadFilters) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        problems: list[FieldProblem] = []
        if filters.status is not None:
            if filters.status not in LEAD_STATUSES:
                problems.append(FieldProblem("status", f"Status must be one of {', '.join(LEAD_STATUSES)}."))
            conditions.append(Lead.status == filters.status)
        if filters.tier is not None:
            rank = _TIER_RANK.get(filters.tier)
            if rank is None:
                problems.append(FieldProblem("tier", f"Tier must be one of {', '.join(_TIER_RANK)}."))
            else:
                # A tier is a band of the urgency key: the filter stays an index range.
                conditions += [Lead.urgency >= rank * 200, Lead.urgency < (rank + 1) * 200]
        if filters.route is not None:
            conditions.append(Lead.route == filters.route)
        if filters.location is not None:
            conditions.append(Lead.location == filters.location)
        if filters.assigned_to is not None:
            conditions.append(Lead.assigned_to_id == filters.assigned_to)
        if filters.created_from is not None:
            conditions.append(Lead.created_at >= filters.created_from)
        if filters.created_to is not None:
            conditions.append(Lead.created_at < filters.created_to)
        if filters.q is not None:
            conditions.append(Lead.search_text.like(f"%{_search_term(filters.q)}%", escape="\\"))
        if problems:
            raise InvalidFields(problems)
        return conditions

    @staticmethod
    def _ordered(stmt: Select[Any], sort: Sort, after: str | None) -> Select[Any]:
        if sort == "urgency":
            if after:
                key = cursors.decode(after, sort, (int, dt.datetime, uuid.UUID))
                stmt = stmt.where(tuple_(Lead.urgency, Lead.created_at, Lead.id) > tuple_(*key))
            return stmt.order_by(Lead.urgency, Lead.created_at, Lead.id)
        if after:
            key = cursors.decode(after, sort, (dt.datetime, uuid.UUID))
            stmt = stmt.where(tuple_(Lead.created_at, Lead.id) < tuple_(*key))
        return stmt.order_by(Lead.created_at.desc(), Lead.id.desc())

    @staticmethod
    def _next_cursor(rows: list[Any], sort: Sort, limit: int) -> str | None:
        if len(rows) <= limit:
            return None
        last = rows[limit - 1]
        key = (last.urgency, last.created_at, last.id) if sort == "urgency" else (last.created_at, last.id)
        return cursors.encode(sort, key)

    def _page(self, filters: LeadFilters, sort: Sort, after: str | None, limit: int) -> Select[Any]:
        """One page of the list. A search picks the page's ids first and reads only those rows.

        How many rows match `LIKE '%term%'` is a guess: when the planner guesses many, it walks the
        sort order until the page is full. Alone, with ix_leads_urgency carrying search_text, that
        walk is an index-only scan, so a wrong guess costs index entries instead of table rows.
        """
        if filters.q is None:
            return self._ordered(self._filtered(filters), sort, after).limit(limit + 1)
        ids = self._ordered(select(Lead.id).where(*self._conditions(filters)), sort, after).limit(limit + 1)
        page = ids.subquery("page")
        return self._ordered(self._filtered(LeadFilters()).join(page, page.c.id == Lead.id), sort, None)

    async def list_leads(
        self, filters: LeadFilters, *, sort: Sort, after: str | None, limit: int, actor: StaffMember
    ) -> LeadPage:
        stmt = self._page(filters, sort, after, limit)
        async with self._sessionmaker() as session, session.begin():
            rows = list((await session.execute(stmt)).all())
            audit.record(session, actor_id=actor.id, action="lead.list", fields=filters.used())
        items = [
            LeadRow(
                id=r.id,
                name=f"{r.first_name} {r.last_name}",
                tier=r.tier,
                route=r.route,
                score=r.score,
                status=r.status,
                location=r.location,
                created_at=r.created_at,
                assigned_to=_assignee(r),
                last_contact_at=r.last_contact_at,
                next_follow_up_at=r.next_follow_up_at,
            )
            for r in rows[:limit]
        ]
        return LeadPage(items=items, next_cursor=self._next_cursor(rows, sort, limit))

    async def triage_queue(self, *, after: str | None, limit: int, actor: StaffMember) -> QueuePage:
        """New leads nobody has acted on yet: emergency and urgent first, then by score, oldest first."""
        stmt = self._ordered(self._filtered(LeadFilters(status="new")), "urgency", after).limit(limit + 1)
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            rows = list((await session.execute(stmt)).all())
            audit.record(session, actor_id=actor.id, action="lead.queue")
        items = [
            QueueRow(
                id=r.id,
                name=f"{r.first_name} {r.last_name}",
                tier=r.tier,
                route=r.route,
                score=r.score,
                status=r.status,
                location=r.location,
                preferred_contact=r.preferred_contact,
                created_at=r.created_at,
                minutes_since_submission=max(0, int((now - r.created_at).total_seconds() // 60)),
                assigned_to=_assignee(r),
                call_by=next_business_day(r.created_at, self._zone) if r.tier == Tier.SOON else None,
            )
            for r in rows[:limit]
        ]
        return QueuePage(items=items, next_cursor=self._next_cursor(rows, "urgency", limit))

    # --- one lead -------------------------------------------------------------------------------

    async def detail(self, lead_id: uuid.UUID, *, actor: StaffMember) -> dict[str, Any]:
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

    async def _detail_body(self, session: AsyncSession, lead: Lead, sees_answers: bool) -> dict[str, Any]:
        screenings = (
            await session.execute(
                select(Screening).where(Screening.lead_id == lead.id).order_by(Screening.created_at.desc())
            )
        ).scalars()
        consent = (await session.execute(Consent.latest_of(lead.id))).scalar_one_or_none()
        staff_names = dict((await session.execute(select(StaffMember.id, StaffMember.name))).tuples().all())
        timeline: list[dict[str, Any]] = []
        for event in (await session.execute(select(LeadEvent).where(LeadEvent.lead_id == lead.id))).scalars():
            timeline.append(
                {
                    "at": event.created_at,
                    "kind": event.kind,
                    "from": event.from_value,
                    "to": event.to_value,
                    "reason": event.reason,
                    "by": staff_names.get(event.actor_id) if event.actor_id else "system",
                }
            )
        for note in (await session.execute(select(LeadNote).where(LeadNote.lead_id == lead.id))).scalars():
            timeline.append(
                {
                    "at": note.created_at,
                    "kind": "note",
                    "id": note.id,
                    "body": note.body,
                    "by": staff_names.get(note.author_id),
                }
            )
        for delivery in (await session.execute(select(Delivery).where(Delivery.lead_id == lead.id))).scalars():
            timeline.append(
                {
                    "at": delivery.created_at,
                    "kind": "email" if delivery.channel == "email" else "webhook",
                    "id": delivery.id,
                    "message": delivery.kind,
                    "state": delivery.status,
                    "attempts": delivery.attempts,
                    "sent_at": delivery.sent_at,
                    "last_error": delivery.last_error,
                }
            )
        timeline.extend(await self._extra_timeline(session, lead))
        timeline.sort(key=lambda item: item["at"], reverse=True)
        return {
            "id": lead.id,
            "status": lead.status,
            "closed_reason": lead.closed_reason,
            "created_at": lead.created_at,
            "updated_at": lead.updated_at,
            "tier": lead.tier,
            "route": lead.route,
            "score": lead.score,
            "contact": {
                "first_name": lead.first_name,
                "last_name": lead.last_name,
                "email": lead.email,
                "phone": lead.phone,
                "preferred_contact": lead.preferred_contact,
                "location": lead.location,
                "zip": lead.zip,
                "language": lead.language,
            },
            "consent": None
            if consent is None
            else {
                "privacy_notice_version": consent.privacy_notice_version,
                "privacy_accepted_at": consent.privacy_accepted_at,
                "email_followup": consent.email_followup,
                "sms": consent.sms,
            },
            "assigned_to": {"id": lead.assigned_to_id, "name": staff_names.get(lead.assigned_to_id)}
            if lead.assigned_to_id
            else None,
            "last_contact_at": lead.last_contact_at,
            "next_follow_up_at": lead.next_follow_up_at,
            "screenings": [
                {
                    "id": s.id,
                    "created_at": s.created_at,
                    "language": s.language,
                    "rule_set_version": s.rule_set_version,
                    "tier": s.tier,
                    "route": s.route,
                    "score": s.score,
                    "reasons": [{"code": r["code"], "text": r["text"]} for r in s.reasons],
                    "rescored_from_id": s.rescored_from_id,
                    **({"answers": s.answers} if sees_answers else {}),
                }
                for s in screenings
            ],
            "timeline": timeline,
        }

    async def _extra_timeline(self, session: AsyncSession, lead: Lead) -> list[dict[str, Any]]:
        """Timeline entries of other domains: the lead's bookings (a move shows as a cancelled one and a new one)."""
        bookings = (await session.execute(select(Booking).where(Booking.lead_id == lead.id))).scalars()
        return [
            {
                "at": booking.created_at,
                "kind": "booking",
                "id": booking.id,
                "starts_at": booking.starts_at,
                "location": booking.location,
                "status": booking.status,
            }
            for booking in bookings
        ]

    async def update(self, lead_id: uuid.UUID, patch: LeadPatch, *, actor: StaffMember) -> dict[str, Any]:
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

    async def export_csv(self, filters: LeadFilters, *, sort: Sort, actor: StaffMember) -> str:
        limit = self._settings.auth.export_max_rows
        stmt = self._ordered(self._filtered(filters), sort, None).add_columns(Lead.email, Lead.phone).limit(limit + 1)
        async with self._sessionmaker() as session, session.begin():
            rows = list((await session.execute(stmt)).all())
            if len(rows) > limit:
                raise InvalidFields([FieldProblem("filters", f"More than {limit} leads match: narrow the filters.")])
            audit.record(session, actor_id=actor.id, action="lead.export", fields=filters.used())
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            [
                "id",
                "created_at",
                "first_name",
                "last_name",
                "email",
                "phone",
                "tier",
                "route",
                "score",
                "status",
                "location",
                "assigned_to",
                "last_contact_at",
                "next_follow_up_at",
            ]
        )
        for r in rows:
            writer.writerow(
                [
                    r.id,
                    r.created_at.isoformat(),
                    _cell(r.first_name),
                    _cell(r.last_name),
                    _cell(r.email),
                    r.phone or "",
                    r.tier,
                    r.route,
                    r.score,
                    r.status,
                    r.location,
                    r.assignee_name or "",
                    r.last_contact_at.isoformat() if r.last_contact_at else "",
                    r.next_follow_up_at.isoformat() if r.next_follow_up_at else "",
                ]
            )
        return out.getvalue()

    async def count(self) -> int:
        async with self._sessionmaker() as session:
            return int((await session.execute(select(func.count()).select_from(Lead))).scalar_one())


def _cell(value: str) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas: neutralise them (CSV injection)."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


__all__ = ["LeadService", "next_business_day"]
