"""Is the pipeline moving? Heartbeats, and the ages of the oldest work waiting: what `GET /pipeline` reports.

Stalled when no worker (or no scheduler) has beaten for `stale_heartbeat` seconds, when an outbox row has
waited longer than `max_wait` to be routed, or when a seek-care-now email or staff alert has waited longer
than `max_wait` in `queued`. Only times, ages and counts: nothing about any patient.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ScalarSelect, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from intake.db.base import utcnow
from intake.db.models import Delivery, OutboxMessage, WorkerHeartbeat
from intake.messaging import kinds
from intake.messaging.heartbeats import SCHEDULER, WORKER
from intake.settings import PipelineSettings
from intake.vocabulary import DeliveryStatus

ALERT_KINDS = (kinds.KIND_SEEK_CARE_NOW, kinds.KIND_STAFF_ALERT, kinds.KIND_STAFF_ALERT_WEBHOOK)


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    """`no_worker_heartbeat`, `no_scheduler_heartbeat`, `outbox_waiting` or `alerts_waiting`."""
    message: str


@dataclass(frozen=True, slots=True)
class Heartbeats:
    last_at: dt.datetime | None
    """The newest heartbeat of any such process; null if none has ever beaten (or none for an hour)."""
    age_seconds: float | None
    alive: int
    """Processes that have beaten within the stale limit."""


@dataclass(frozen=True, slots=True)
class Waiting:
    count: int
    oldest_age_seconds: float | None


@dataclass(frozen=True, slots=True)
class PipelineStatus:
    status: str
    """`ok`, or `stalled` with `reasons`."""
    reasons: list[Reason]
    worker: Heartbeats | None
    """Null only when the database could not be read."""
    scheduler: Heartbeats | None
    outbox: Waiting | None
    """Outbox rows not yet routed (each is a screening's follow-through)."""
    alerts: Waiting | None
    """Seek-care-now emails, staff alerts and their webhooks still `queued` on the alerts queue."""
    limits: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.reasons


def unreadable(settings: PipelineSettings) -> PipelineStatus:
    """What is known when the database does not answer: nothing, which is a reason of its own."""
    reason = Reason("database_unreachable", "the database did not answer: heartbeats and queues are unknown")
    return PipelineStatus("stalled", [reason], None, None, None, None, _limits(settings))


def _limits(settings: PipelineSettings) -> dict[str, float]:
    return {"stale_heartbeat_seconds": settings.stale_heartbeat, "max_wait_seconds": settings.max_wait}


async def pipeline_status(connection: AsyncConnection, settings: PipelineSettings) -> PipelineStatus:
    """One statement of scalar subqueries: each reads a small partial index or the tiny heartbeat table."""
    now = utcnow()
    fresh_after = now - dt.timedelta(seconds=settings.stale_heartbeat)

    def last(role: str) -> ScalarSelect[Any]:
        return select(func.max(WorkerHeartbeat.beat_at)).where(WorkerHeartbeat.role == role).scalar_subquery()

    def alive(role: str) -> ScalarSelect[Any]:
        return (
            select(func.count())
            .select_from(WorkerHeartbeat)
            .where(WorkerHeartbeat.role == role, WorkerHeartbeat.beat_at >= fresh_after)
            .scalar_subquery()
        )

    unrouted = OutboxMessage.done_at.is_(None)
    queued_alert = (
        Delivery.status == DeliveryStatus.QUEUED,
        Delivery.kind.in_(ALERT_KINDS),
        Delivery.queue == kinds.ALERTS_QUEUE,
    )
    row = (
        await connection.execute(
            select(
                last(WORKER).label("worker_last"),
                alive(WORKER).label("workers"),
                last(SCHEDULER).label("scheduler_last"),
                alive(SCHEDULER).label("schedulers"),
                select(func.min(OutboxMessage.created_at)).where(unrouted).scalar_subquery().label("outbox_oldest"),
                select(func.count()).select_from(OutboxMessage).where(unrouted).scalar_subquery().label("outbox"),
                select(func.min(Delivery.created_at)).where(*queued_alert).scalar_subquery().label("alert_oldest"),
                select(func.count()).select_from(Delivery).where(*queued_alert).scalar_subquery().label("alerts"),
            )
        )
    ).one()
    worker = _heartbeats(row.worker_last, row.workers, now)
    scheduler = _heartbeats(row.scheduler_last, row.schedulers, now)
    outbox = Waiting(row.outbox, _age(_datetime(row.outbox_oldest), now))
    alerts = Waiting(row.alerts, _age(_datetime(row.alert_oldest), now))

    reasons: list[Reason] = []
    for role, beats in ((WORKER, worker), (SCHEDULER, scheduler)):
        if beats.alive == 0:
            since = "ever" if beats.age_seconds is None else f"{beats.age_seconds:.0f} s"
            reasons.append(
                Reason(
                    f"no_{role}_heartbeat",
                    f"no {role} has shown a heartbeat for {since} (limit {settings.stale_heartbeat:g} s)",
                )
            )
    if outbox.oldest_age_seconds is not None and outbox.oldest_age_seconds > settings.max_wait:
        reasons.append(
            Reason(
                "outbox_waiting",
                f"a screening has waited {outbox.oldest_age_seconds:.0f} s to be routed "
                f"(limit {settings.max_wait:g} s; {outbox.count} waiting)",
            )
        )
    if alerts.oldest_age_seconds is not None and alerts.oldest_age_seconds > settings.max_wait:
        reasons.append(
            Reason(
                "alerts_waiting",
                f"a seek-care-now email or staff alert has waited {alerts.oldest_age_seconds:.0f} s to be sent "
                f"(limit {settings.max_wait:g} s; {alerts.count} waiting)",
            )
        )
    return PipelineStatus(
        status="stalled" if reasons else "ok",
        reasons=reasons,
        worker=worker,
        scheduler=scheduler,
        outbox=outbox,
        alerts=alerts,
        limits=_limits(settings),
    )


def _age(at: dt.datetime | None, now: dt.datetime) -> float | None:
    return None if at is None else round(max((now - at).total_seconds(), 0.0), 1)


def _heartbeats(last_at: dt.datetime | str | None, alive: int, now: dt.datetime) -> Heartbeats:
    at = _datetime(last_at)
    return Heartbeats(at, _age(at, now), alive)


def _datetime(value: dt.datetime | str | None) -> dt.datetime | None:
    """An aggregate's result in UTC, whatever the driver hands back (SQLite may give text, or a naive time)."""
    if value is None:
        return None
    parsed = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


async def fresh_heartbeats(connection: AsyncConnection, settings: PipelineSettings, *, role: str, host: str) -> int:
    """How many processes of `role` on `host` have beaten within the stale limit (a container's healthcheck)."""
    fresh_after = utcnow() - dt.timedelta(seconds=settings.stale_heartbeat)
    found = await connection.execute(
        select(func.count())
        .select_from(WorkerHeartbeat)
        .where(WorkerHeartbeat.role == role, WorkerHeartbeat.host == host, WorkerHeartbeat.beat_at >= fresh_after)
    )
    return int(found.scalar_one())


__all__ = ["ALERT_KINDS", "PipelineStatus", "Reason", "fresh_heartbeats", "pipeline_status", "unreadable"]
