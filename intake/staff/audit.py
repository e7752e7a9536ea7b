"""Writes audit rows inside the caller's transaction, and reads the trail for admins."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable

import structlog
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from intake import keyset as cursors
from intake.db.base import new_id, utcnow
from intake.db.models import AuditEntry


def record(
    session: AsyncSession,
    *,
    actor_id: uuid.UUID | None,
    action: str,
    lead_id: uuid.UUID | None = None,
    target_staff_id: uuid.UUID | None = None,
    fields: Iterable[str] = (),
    at: dt.datetime | None = None,
) -> None:
    """Add an audit row to the open transaction: it commits or rolls back with what it records."""
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    session.add(
        AuditEntry(
            id=new_id(),
            at=at or utcnow(),
            actor_id=actor_id,
            action=action,
            lead_id=lead_id,
            target_staff_id=target_staff_id,
            fields=sorted(set(fields)),
            request_id=request_id,
        )
    )


class AuditService:
    """The trail, newest first, for admins. Reading it is itself recorded."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]):
        self._sessionmaker = sessionmaker

    async def list(
        self,
        *,
        actor_id: uuid.UUID,
        staff_id: uuid.UUID | None,
        lead_id: uuid.UUID | None,
        action: str | None,
        at_from: dt.datetime | None,
        at_to: dt.datetime | None,
        after: str | None,
        limit: int,
    ) -> tuple[list[AuditEntry], str | None]:
        stmt = select(AuditEntry)
        if staff_id is not None:
            stmt = stmt.where(AuditEntry.actor_id == staff_id)
        if lead_id is not None:
            stmt = stmt.where(AuditEntry.lead_id == lead_id)
        if action is not None:
            stmt = stmt.where(AuditEntry.action == action)
        if at_from is not None:
            stmt = stmt.where(AuditEntry.at >= at_from)
        if at_to is not None:
            stmt = stmt.where(AuditEntry.at < at_to)
        if after:
            key = cursors.decode(after, "audit", (dt.datetime, uuid.UUID))
            stmt = stmt.where(tuple_(AuditEntry.at, AuditEntry.id) < tuple_(*key))
        stmt = stmt.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit + 1)
        async with self._sessionmaker() as session, session.begin():
            rows = list((await session.execute(stmt)).scalars())
            record(session, actor_id=actor_id, action="audit.read")
        next_cursor = cursors.encode("audit", (rows[limit - 1].at, rows[limit - 1].id)) if len(rows) > limit else None
        return rows[:limit], next_cursor
