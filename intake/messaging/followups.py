"""Follow-up sequences: rows with `due_at` in the database, scheduled in the sending window, claimed by beat.

Never ETA or countdown tasks: Redis forgets them on restart and re-delivers long ones past its
visibility timeout. The database is the schedule; beat claims what is due every FOLLOW_UP_CLAIM_SECONDS.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

import structlog
import yaml
from sqlalchemy import CursorResult, Executable, Select, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from intake.db.base import new_id
from intake.db.models import Booking, Consent, Delivery, FollowUp, Lead
from intake.messaging import kinds
from intake.messaging.outbox import Publication

log = structlog.get_logger(__name__)

STOP_CONDITIONS = ("booked", "unsubscribed", "do_not_contact", "closed", "converted", "no_consent")
_OFFSET = re.compile(r"^(-?\d+)([dh])$")


class SequenceError(Exception):
    """sequences.yaml is malformed: start-up stops with this message."""


@dataclass(frozen=True, slots=True)
class Step:
    kind: str
    offset: str
    template: str


@dataclass(frozen=True, slots=True)
class Sequence:
    name: str
    anchor: str
    stop_on: tuple[str, ...]
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class Window:
    """The hours follow-ups may go out, in clinic time: [start, end)."""

    zone: ZoneInfo
    start: dt.time
    end: dt.time

    @classmethod
    def parse(cls, zone: str, spec: str) -> Window:
        try:
            start_text, end_text = spec.split("-")
            start = dt.time.fromisoformat(start_text.strip())
            end = dt.time.max if end_text.strip() == "24:00" else dt.time.fromisoformat(end_text.strip())
        except ValueError:
            raise ValueError(f"SENDING_WINDOW must look like 08:00-20:00, got {spec!r}") from None
        return cls(ZoneInfo(zone), start, end)

    def contains(self, moment: dt.datetime) -> bool:
        local = moment.astimezone(self.zone).time()
        return self.start <= local < self.end

    def place(self, moment: dt.datetime) -> dt.datetime:
        """`moment` if it is inside the window, else the window's next opening (the next morning)."""
        if self.contains(moment):
            return moment
        local = moment.astimezone(self.zone)
        day = local.date() if local.time() < self.start else local.date() + dt.timedelta(days=1)
        # Combining a date with a wall-clock time in the zone gets daylight-saving changes right.
        return dt.datetime.combine(day, self.start, tzinfo=self.zone).astimezone(dt.UTC)


def apply_offset(anchor: dt.datetime, offset: str, zone: ZoneInfo) -> dt.datetime:
    match = _OFFSET.match(offset)
    if match is None:
        raise SequenceError(f"offset {offset!r} is not like 3d or -24h")
    amount, unit = int(match.group(1)), match.group(2)
    if unit == "h":
        return anchor + dt.timedelta(hours=amount)
    local = anchor.astimezone(zone)
    moved = dt.datetime.combine(local.date() + dt.timedelta(days=amount), local.time(), tzinfo=zone)
    return moved.astimezone(dt.UTC)


@lru_cache(maxsize=1)
def sequences() -> dict[str, Sequence]:
    """The sequences of sequences.yaml, checked; a malformed file raises SequenceError naming the problem."""
    return parse_sequences(yaml.safe_load(resources.files("intake.messaging").joinpath("sequences.yaml").read_text()))


def parse_sequences(raw: Any) -> dict[str, Sequence]:
    found: dict[str, Sequence] = {}
    kinds_seen: set[str] = set()
    for name, body in (raw or {}).get("sequences", {}).items():
        unknown = set(body.get("stop_on", [])) - set(STOP_CONDITIONS)
        if unknown:
            raise SequenceError(f"sequences.yaml: {name}: unknown stop condition(s) {sorted(unknown)}")
        if body.get("anchor") not in {"routed", "booking_start", "attended"}:
            raise SequenceError(f"sequences.yaml: {name}: anchor must be routed, booking_start or attended")
        steps = []
        for step in body.get("steps", []):
            if not _OFFSET.match(str(step.get("offset", ""))):
                raise SequenceError(f"sequences.yaml: {name}: offset {step.get('offset')!r} is not like 3d or -24h")
            if step["kind"] in kinds_seen:
                raise SequenceError(f"sequences.yaml: kind {step['kind']!r} appears twice")
            kinds_seen.add(step["kind"])
            steps.append(Step(step["kind"], str(step["offset"]), step["template"]))
        found[name] = Sequence(name, body["anchor"], tuple(body.get("stop_on", [])), tuple(steps))
    return found


def sequence_of_kind(kind: str) -> tuple[Sequence, Step] | None:
    for sequence in sequences().values():
        for step in sequence.steps:
            if step.kind == kind:
                return sequence, step
    return None


@lru_cache(maxsize=1)
def follow_up_kinds() -> frozenset[str]:
    return frozenset(step.kind for sequence in sequences().values() for step in sequence.steps)


# --- scheduling (statements shared by the API's async sessions and the workers' sync ones) ------


def schedule_statement(
    dialect: str,
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
                "status": "pending",
                "ref_id": ref_id,
            }
        )
    if not rows:
        return None
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(FollowUp).values(rows)
    if sequence.anchor == "booking_start":
        return cast(
            Executable,
            insert.on_conflict_do_update(
                index_elements=["lead_id", "kind"],
                set_={
                    "due_at": insert.excluded.due_at,
                    "status": "pending",
                    "ref_id": insert.excluded.ref_id,
                    "cancelled_reason": None,
                },
                where=FollowUp.status.in_(("pending", "cancelled")),
            ),
        )
    return cast(Executable, insert.on_conflict_do_nothing(index_elements=["lead_id", "kind"]))


def cancel_statement(lead_id: uuid.UUID, reason: str, *, sequences_named: tuple[str, ...] | None = None) -> Executable:
    stmt = update(FollowUp).where(FollowUp.lead_id == lead_id, FollowUp.status == "pending")
    if sequences_named is not None:
        stmt = stmt.where(FollowUp.sequence.in_(sequences_named))
    return stmt.values(status="cancelled", cancelled_reason=reason)


def stopped_by(condition: str) -> tuple[str, ...]:
    return tuple(name for name, seq in sequences().items() if condition in seq.stop_on)


def next_follow_up_statement(lead_id: uuid.UUID) -> Executable:
    """Keep the lead's `next_follow_up_at` (shown in the staff list) equal to its earliest pending row."""
    return next_follow_ups_statement([lead_id])


def next_follow_ups_statement(lead_ids: Collection[uuid.UUID]) -> Executable:
    """`next_follow_up_statement` for many leads in one UPDATE (a claimed batch)."""
    earliest = (
        select(func.min(FollowUp.due_at))
        .where(FollowUp.lead_id == Lead.id, FollowUp.status == "pending")
        .scalar_subquery()
    )
    # No session sync: callers refresh the lead if they read it afterwards (async sessions cannot lazy-load).
    return (
        update(Lead)
        .where(Lead.id.in_(lead_ids))
        .values(next_follow_up_at=earliest)
        .execution_options(synchronize_session=False)
    )


def _consented(consent: Consent | None) -> bool:
    return consent is not None and consent.email_followup


# --- the API side (async), inside the caller's transaction ---------------------------------------

BookingEvent = Literal["booked", "moved", "cancelled", "attended", "no_show"]


async def booking_changed(
    session: AsyncSession, *, lead: Lead, booking: Booking, event: BookingEvent, window: Window, now: dt.datetime
) -> None:
    """Booking stops the booking reminders and the check-in; a live booking gets its 24-hour reminder;
    attending starts the thank-you. Call it in the booking's own transaction."""
    dialect = session.get_bind().dialect.name
    if event in ("booked", "moved"):
        await session.execute(cancel_statement(lead.id, "booked", sequences_named=stopped_by("booked")))
        if await _may_follow_up(session, lead):
            stmt = schedule_statement(
                dialect, lead.id, sequences()["booked"], booking.starts_at, window, now, booking.id
            )
            if stmt is not None:
                await session.execute(stmt)
    elif event in ("cancelled", "no_show"):
        await session.execute(cancel_statement(lead.id, event, sequences_named=("booked",)))
    elif event == "attended":
        await session.execute(cancel_statement(lead.id, "attended", sequences_named=("booked",)))
        if await _may_follow_up(session, lead):
            stmt = schedule_statement(dialect, lead.id, sequences()["attended"], now, window, now, booking.id)
            if stmt is not None:
                await session.execute(stmt)
    await session.execute(next_follow_up_statement(lead.id))


async def _may_follow_up(session: AsyncSession, lead: Lead) -> bool:
    if lead.unsubscribed_at is not None or lead.closed_reason == "do_not_contact":
        return False
    consent = (await session.execute(_latest_consent(lead.id))).scalar_one_or_none()
    return _consented(consent)


def _latest_consent(lead_id: uuid.UUID) -> Select[tuple[Consent]]:
    return select(Consent).where(Consent.lead_id == lead_id).order_by(Consent.created_at.desc()).limit(1)


# --- the worker side (sync) ------------------------------------------------------------------------


def start_after_routing(session: Session, lead: Lead, route: str, window: Window, now: dt.datetime) -> None:
    """After a screening is routed: booking reminders, or the seek-care check-in (if the person agreed)."""
    if lead.unsubscribed_at is not None or lead.closed_reason == "do_not_contact":
        return
    if not _consented(session.execute(_latest_consent(lead.id)).scalar_one_or_none()):
        return
    if route == "book_consultation" and _has_live_booking(session, lead.id):
        return
    stmt = schedule_statement(session.get_bind().dialect.name, lead.id, sequences()[route], now, window, now)
    if stmt is not None:
        session.execute(stmt)
        session.execute(next_follow_up_statement(lead.id))


def _has_live_booking(session: Session, lead_id: uuid.UUID) -> bool:
    return (
        session.execute(
            select(Booking.id).where(Booking.lead_id == lead_id, Booking.status == "booked").limit(1)
        ).first()
        is not None
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
                    .where(FollowUp.status == "pending", FollowUp.due_at <= now)
                    .values(due_at=window.place(now))
                ),
            ).rowcount
            if moved:
                log.info("followups.deferred_to_window", count=moved)
            return []
        due = (
            select(FollowUp.id)
            .where(FollowUp.status == "pending", FollowUp.due_at <= now)
            .order_by(FollowUp.due_at)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        # In a CTE, the batch is chosen once: PostgreSQL may re-run an `IN (SELECT … LIMIT … SKIP LOCKED)`
        # subquery while it updates, and so claim more than `limit` rows (a test showed 6 for a limit of 2).
        # A conditional UPDATE ... RETURNING claims on SQLite too, which ignores SKIP LOCKED.
        batch = due.cte("due")
        claimed = session.execute(
            update(FollowUp)
            .where(FollowUp.id.in_(select(batch.c.id)), FollowUp.status == "pending")
            .values(status="claimed", claimed_at=now)
            .returning(FollowUp.id, FollowUp.lead_id, FollowUp.kind, FollowUp.ref_id)
        ).all()
        if not claimed:
            return []
        rows = [
            {
                "id": new_id(),
                "created_at": now,
                "updated_at": now,
                "lead_id": row.lead_id,
                "screening_id": None,
                "ref_id": row.ref_id,
                "kind": row.kind,
                "channel": "email",
                "queue": kinds.DEFAULT_QUEUE,
                "dedupe_key": f"{row.lead_id}:followup:{row.kind}",
                "status": "queued",
                "attempts": 0,
            }
            for row in claimed
        ]
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        inserted = (
            session.execute(
                dialect.insert(Delivery)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["dedupe_key"])
                .returning(Delivery.id)
            )
            .scalars()
            .all()
        )
        session.execute(next_follow_ups_statement({row.lead_id for row in claimed}))
    log.info("followups.claimed", claimed=len(claimed), deliveries=len(inserted))
    return [Publication(kinds.TASK_SEND_DELIVERY, delivery_id, kinds.DEFAULT_QUEUE) for delivery_id in inserted]


def stop_reason(lead: Lead, kind: str, *, has_live_booking: bool, consented: bool) -> str | None:
    """Checked again when a follow-up is about to be sent: why it must not go, or None."""
    found = sequence_of_kind(kind)
    if found is None:
        return None
    sequence, _ = found
    checks = {
        "unsubscribed": lead.unsubscribed_at is not None,
        "do_not_contact": lead.closed_reason == "do_not_contact",
        "closed": lead.status == "closed",
        "converted": lead.status == "converted",
        "booked": has_live_booking,
        "no_consent": not consented,
    }
    for condition in sequence.stop_on:
        if checks[condition]:
            return condition
    return None


def waiting_to_send(session: Session, limit: int) -> int:
    """How many follow-up emails wait to be sent (queued deliveries), counted up to `limit`."""
    waiting = (
        select(Delivery.id)
        .where(Delivery.status == "queued", Delivery.kind.in_(sorted(follow_up_kinds())))
        .limit(limit)
        .subquery()
    )
    with session.begin():
        return int(session.execute(select(func.count()).select_from(waiting)).scalar_one())


__all__ = [
    "Window",
    "booking_changed",
    "claim_due",
    "start_after_routing",
    "stop_reason",
    "waiting_to_send",
]
