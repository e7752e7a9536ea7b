"""Turns an accepted screening into its deliveries: seek-care-now email and staff alerts, or an invitation."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.db.base import utcnow
from intake.db.models import Booking, Consent, Delivery, Lead, OutboxMessage, Screening
from intake.leads import lifecycle
from intake.messaging import deliveries, kinds
from intake.messaging.followups.rows import next_follow_up_statement, schedule_statement
from intake.messaging.followups.schedule import Window, sequences
from intake.screening import Route
from intake.settings import Settings
from intake.vocabulary import BookingStatus, DeliveryStatus

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Planned:
    kind: str
    channel: str
    queue: str


def plan(screening: Screening, settings: Settings) -> list[Planned]:
    if screening.route == Route.SEEK_CARE_NOW:
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
        deliveries.new_delivery(
            lead_id=lead.id,
            kind=p.kind,
            about=screening.id,
            queue=p.queue,
            now=now,
            screening_id=screening.id,
            channel=p.channel,
        )
        for p in planned
    ]
    session.execute(deliveries.insert_new(session, rows))


def start_follow_ups(session: Session, lead: Lead, route: str, window: Window, now: dt.datetime) -> None:
    """After a screening is routed: booking reminders, or the seek-care check-in (if the person agreed)."""
    if not lifecycle.may_follow_up(lead, session.execute(Consent.latest_of(lead.id)).scalar_one_or_none()):
        return
    if route == Route.BOOK_CONSULTATION and _has_live_booking(session, lead.id):
        return
    stmt = schedule_statement(session, lead.id, sequences()[route], now, window, now)
    if stmt is not None:
        session.execute(stmt)
        session.execute(next_follow_up_statement(lead.id))


def _has_live_booking(session: Session, lead_id: uuid.UUID) -> bool:
    return (
        session.execute(
            select(Booking.id).where(Booking.lead_id == lead_id, Booking.status == BookingStatus.BOOKED).limit(1)
        ).first()
        is not None
    )


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
            window = Window.parse(settings.clinic.timezone, settings.followups.sending_window)
            start_follow_ups(session, lead, screening.route, window, now)
        pending = session.execute(
            select(Delivery.id, Delivery.queue).where(
                Delivery.screening_id == screening.id, Delivery.status == DeliveryStatus.QUEUED
            )
        ).all()
    log.info("routing.done", outbox_id=str(outbox_id), route=screening.route, deliveries=len(pending))
    return [(row.id, row.queue) for row in pending]
