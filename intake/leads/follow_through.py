"""Turns an accepted screening into its deliveries: seek-care-now email and staff alerts, or an invitation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import structlog
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from intake.db.base import new_id, utcnow
from intake.db.models import Delivery, Lead, OutboxMessage, Screening
from intake.messaging import followups, kinds
from intake.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Planned:
    kind: str
    channel: str
    queue: str


def plan(screening: Screening, settings: Settings) -> list[Planned]:
    if screening.route == "seek_care_now":
        planned = [Planned(kinds.KIND_SEEK_CARE_NOW, "email", kinds.ALERTS_QUEUE)]
        if settings.alerts.staff_emails:
            planned.append(Planned(kinds.KIND_STAFF_ALERT, "email", kinds.ALERTS_QUEUE))
        if settings.alerts.webhook_url:
            planned.append(Planned(kinds.KIND_STAFF_ALERT_WEBHOOK, "webhook", kinds.ALERTS_QUEUE))
        return planned
    return [Planned(kinds.KIND_BOOKING_INVITATION, "email", kinds.DEFAULT_QUEUE)]


def insert_deliveries(session: Session, lead: Lead, screening: Screening, planned: list[Planned]) -> None:
    """Insert what is not there yet; a second run of the same routing adds nothing."""
    if not planned:
        return
    now = utcnow()
    rows = [
        {
            "id": new_id(),
            "created_at": now,
            "updated_at": now,
            "lead_id": lead.id,
            "screening_id": screening.id,
            "kind": p.kind,
            "channel": p.channel,
            "queue": p.queue,
            "dedupe_key": f"{lead.id}:{screening.id}:{p.kind}",
            "status": "queued",
            "attempts": 0,
        }
        for p in planned
    ]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(Delivery).values(rows).on_conflict_do_nothing(index_elements=["dedupe_key"]))


def route_screening(session: Session, outbox_id: uuid.UUID, settings: Settings) -> list[tuple[uuid.UUID, str]]:
    """Record the screening's deliveries and mark the outbox row done; returns what to send now."""
    with session.begin():
        message = session.get(OutboxMessage, outbox_id, with_for_update=True)
        if message is None:
            log.warning("routing.unknown_outbox", outbox_id=str(outbox_id))
            return []
        screening = session.get_one(Screening, message.ref_id)
        lead = session.get_one(Lead, screening.lead_id)
        insert_deliveries(session, lead, screening, plan(screening, settings))
        if message.done_at is None:
            now = utcnow()
            message.done_at = now
            window = followups.Window.parse(settings.clinic.timezone, settings.followups.sending_window)
            followups.start_after_routing(session, lead, screening.route, window, now)
        pending = session.execute(
            select(Delivery.id, Delivery.queue).where(
                Delivery.screening_id == screening.id, Delivery.status == "queued"
            )
        ).all()
    log.info("routing.done", outbox_id=str(outbox_id), route=screening.route, deliveries=len(pending))
    return [(row.id, row.queue) for row in pending]
