"""Staff lists of leads: the list, search and triage queue (filters, keyset pages) and the CSV export. Audited."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from intake import keyset as cursors
from intake.db.base import utcnow
from intake.db.models import (
    Lead,
    StaffMember,
)
from intake.leads.schemas import (
    LeadFilters,
    LeadPage,
    LeadRow,
    QueuePage,
    QueueRow,
    Sort,
)
from intake.problems import FieldProblem, InvalidFields
from intake.screening import Tier
from intake.settings import Settings
from intake.staff import audit
from intake.staff.schemas import StaffRef
from intake.vocabulary import LEAD_STATUSES, LeadStatus

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


def _shown(row: Any) -> dict[str, Any]:
    """What every list row shows of a lead: who, how urgent, where it stands."""
    return {
        "id": row.id,
        "name": f"{row.first_name} {row.last_name}",
        "tier": row.tier,
        "route": row.route,
        "score": row.score,
        "status": row.status,
        "location": row.location,
    }


def _assignee(row: Any) -> StaffRef | None:
    return StaffRef(id=row.assigned_to_id, name=row.assignee_name) if row.assigned_to_id else None


def next_business_day(moment: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The same clock time one business day later in the clinic's zone (Friday → Monday)."""
    local = moment.astimezone(zone) + dt.timedelta(days=1)
    while local.weekday() >= 5:
        local += dt.timedelta(days=1)
    return local.astimezone(dt.UTC)


class LeadQueue:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings):
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._zone = ZoneInfo(settings.clinic.timezone)

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
                **_shown(r),
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
        stmt = self._ordered(self._filtered(LeadFilters(status=LeadStatus.NEW)), "urgency", after).limit(limit + 1)
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            rows = list((await session.execute(stmt)).all())
            audit.record(session, actor_id=actor.id, action="lead.queue")
        items = [
            QueueRow(
                **_shown(r),
                preferred_contact=r.preferred_contact,
                created_at=r.created_at,
                minutes_since_submission=max(0, int((now - r.created_at).total_seconds() // 60)),
                assigned_to=_assignee(r),
                call_by=next_business_day(r.created_at, self._zone) if r.tier == Tier.SOON else None,
            )
            for r in rows[:limit]
        ]
        return QueuePage(items=items, next_cursor=self._next_cursor(rows, "urgency", limit))

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


def _cell(value: str) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas: neutralise them (CSV injection)."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


__all__ = ["LeadQueue", "next_business_day"]
