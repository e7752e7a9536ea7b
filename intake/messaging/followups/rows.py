"""Follow-up rows: the statements that schedule, cancel and claim them, shared by the API's async sessions and
the workers' sync ones. Claiming turns due rows into deliveries, once each, inside the sending window.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection
from typing import Any, cast

import structlog
from sqlalchemy import CursorResult, Executable, func, select, update
from sqlalchemy.orm import Session

from intake.db import dialect
from intake.db.base import new_id
from intake.db.models import Delivery, FollowUp, Lead
from intake.messaging import deliveries, kinds
from intake.messaging.followups.schedule import Sequence, Window, apply_offset, follow_up_kinds, sequences
from intake.messaging.publishing.publication import Publication
from intake.vocabulary import DeliveryStatus, FollowUpStatus

log = structlog.get_logger(__name__)


def schedule_statement(
    bind: dialect.Bind,
    lead_id: uuid.UUID,
    sequence: Sequence,
    anchor: dt.datetime,
    window: Window,
    now: dt.datetime,
    ref_id: uuid.UUID | None = None,
) -> Executable | None:
    """Insert the sequence's steps that are still ahead; a step already there for this lead is left alone,
    except a booking reminder, which follows its booking when it moves."""
    rows = []
    for step in sequence.steps:
        due = window.place(apply_offset(anchor, step.offset, window.zone))
        if due <= now:
            continue  # e.g. a reminder 24 h before a booking made 3 h ahead
        rows.append(
            {
                "id": new_id(),
                "created_at": now,
                "lead_id": lead_id,
                "sequence": sequence.name,
                "kind": step.kind,
                "due_at": due,
                "status": FollowUpStatus.PENDING,
                "ref_id": ref_id,
            }
        )
    if not rows:
        return None
    insert = dialect.insert(bind, FollowUp).values(rows)
    if sequence.anchor == "booking_start":
        return cast(
            Executable,
            insert.on_conflict_do_update(
                index_elements=["lead_id", "kind"],
                set_={
                    "due_at": insert.excluded.due_at,
                    "status": FollowUpStatus.PENDING,
                    "ref_id": insert.excluded.ref_id,
                    "cancelled_reason": None,
                },
                where=FollowUp.status.in_((FollowUpStatus.PENDING, FollowUpStatus.CANCELLED)),
            ),
        )
    return cast(Executable, insert.on_conflict_do_nothing(index_elements=["lead_id", "kind"]))


def cancel_statement(lead_id: uuid.UUID, reason: str, *, sequences_named: tuple[str, ...] | None = None) -> Executable:
    stmt = update(FollowUp).where(FollowUp.lead_id == lead_id, FollowUp.status == FollowUpStatus.PENDING)
    if sequences_named is not None:
        stmt = stmt.where(FollowUp.sequence.in_(sequences_named))
    return stmt.values(status=FollowUpStatus.CANCELLED, cancelled_reason=reason)


def stopped_by(condition: str) -> tuple[str, ...]:
    return tuple(name for name, seq in sequences().items() if condition in seq.stop_on)


def next_follow_up_statement(lead_id: uuid.UUID) -> Executable:
    """Keep the lead's `next_follow_up_at` (shown in the staff list) equal to its earliest pending row."""
    return next_follow_ups_statement([lead_id])


def next_follow_ups_statement(lead_ids: Collection[uuid.UUID]) -> Executable:
    """`next_follow_up_statement` for many leads in one UPDATE (a claimed batch)."""
    earliest = (
        select(func.min(FollowUp.due_at))
        .where(FollowUp.lead_id == Lead.id, FollowUp.status == FollowUpStatus.PENDING)
        .scalar_subquery()
    )
    # No session sync: callers refresh the lead if they read it afterwards (async sessions cannot lazy-load).
    return (
        update(Lead)
        .where(Lead.id.in_(lead_ids))
        .values(next_follow_up_at=earliest)
        .execution_options(synchronize_session=False)
    )


def claim_due(session: Session, window: Window, now: dt.datetime, limit: int) -> list[Publication]:
    """Claim due follow-ups (each by one beat run only), turn them into deliveries, return what to publish.

    Outside the sending window nothing is claimed: what is due moves to the window's next opening.
    """
    with session.begin():
        if not window.contains(now):
            moved = cast(
                CursorResult[Any],
                session.execute(
                    update(FollowUp)
                    .where(FollowUp.status == FollowUpStatus.PENDING, FollowUp.due_at <= now)
                    .values(due_at=window.place(now))
                ),
            ).rowcount
            if moved:
                log.info("followups.deferred_to_window", count=moved)
            return []
        due = (
            select(FollowUp.id)
            .where(FollowUp.status == FollowUpStatus.PENDING, FollowUp.due_at <= now)
            .order_by(FollowUp.due_at)
            .limit(limit)
        )
        due = dialect.skip_locked(due, session)
        # In a CTE, the batch is chosen once: PostgreSQL may re-run an `IN (SELECT … LIMIT … SKIP LOCKED)`
        # subquery while it updates, and so claim more than `limit` rows (a test showed 6 for a limit of 2).
        # A conditional UPDATE ... RETURNING claims on SQLite too, which ignores SKIP LOCKED.
        batch = due.cte("due")
        claimed = session.execute(
            update(FollowUp)
            .where(FollowUp.id.in_(select(batch.c.id)), FollowUp.status == FollowUpStatus.PENDING)
            .values(status=FollowUpStatus.CLAIMED, claimed_at=now)
            .returning(FollowUp.id, FollowUp.lead_id, FollowUp.kind, FollowUp.ref_id)
        ).all()
        if not claimed:
            return []
        rows = [
            deliveries.new_delivery(
                lead_id=row.lead_id,
                kind=row.kind,
                about=deliveries.FOLLOW_UP,
                queue=kinds.DEFAULT_QUEUE,
                now=now,
                ref_id=row.ref_id,
            )
            for row in claimed
        ]
        inserted = session.execute(deliveries.insert_new(session, rows)).all()
        session.execute(next_follow_ups_statement({row.lead_id for row in claimed}))
    log.info("followups.claimed", claimed=len(claimed), deliveries=len(inserted))
    return [deliveries.publication(row.id, row.queue) for row in inserted]


def waiting_to_send(session: Session, limit: int) -> int:
    """How many follow-up emails wait to be sent (queued deliveries), counted up to `limit`."""
    waiting = (
        select(Delivery.id)
        .where(Delivery.status == DeliveryStatus.QUEUED, Delivery.kind.in_(sorted(follow_up_kinds())))
        .limit(limit)
        .subquery()
    )
    with session.begin():
        return int(session.execute(select(func.count()).select_from(waiting)).scalar_one())


__all__ = [
    "cancel_statement",
    "claim_due",
    "next_follow_up_statement",
    "next_follow_ups_statement",
    "schedule_statement",
    "stopped_by",
    "waiting_to_send",
]
