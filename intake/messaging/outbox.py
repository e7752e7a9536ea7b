"""The outbox: a row per piece of follow-through, and the sweep that re-publishes what was missed."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, or_, update
from sqlalchemy.orm import Session

from intake.db.base import utcnow
from intake.db.models import Delivery, OutboxMessage
from intake.messaging import kinds
from intake.messaging.publishing.publication import Publication
from intake.settings import MessagingSettings
from intake.vocabulary import DeliveryStatus


def routing_queue(route: str) -> str:
    """Seek-care-now work goes to the alerts queue, which no booking email can hold up."""
    return kinds.ALERTS_QUEUE if route == "seek_care_now" else kinds.DEFAULT_QUEUE


def due_for_republish(session: Session, settings: MessagingSettings) -> list[Publication]:
    """Outbox rows and deliveries that should be done by now but are not: publish them again.

    Every task is idempotent, so publishing a row that is in fact being worked on costs one no-op.
    """
    now = utcnow()
    stale = now - dt.timedelta(seconds=settings.republish_after)
    lease_over = now - dt.timedelta(seconds=settings.sending_lease)
    found: list[Publication] = []
    with session.begin():
        outbox = session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.done_at.is_(None),
                OutboxMessage.created_at < stale,
                or_(OutboxMessage.published_at.is_(None), OutboxMessage.published_at < stale),
            )
            .values(published_at=now, publish_count=OutboxMessage.publish_count + 1)
            .returning(OutboxMessage.id, OutboxMessage.queue)
        ).all()
        found += [Publication(kinds.TASK_ROUTE_SCREENING, row.id, row.queue) for row in outbox]
        deliveries = session.execute(
            update(Delivery)
            .where(
                or_(
                    and_(Delivery.status == DeliveryStatus.QUEUED, Delivery.updated_at < stale),
                    and_(
                        Delivery.status == DeliveryStatus.SENDING,
                        Delivery.claimed_at < lease_over,
                        Delivery.updated_at < stale,
                    ),
                    and_(
                        Delivery.status == DeliveryStatus.FAILED,
                        Delivery.next_attempt_at < stale,
                        Delivery.updated_at < stale,
                    ),
                )
            )
            .values(updated_at=now)
            .returning(Delivery.id, Delivery.queue)
        ).all()
        found += [Publication(kinds.TASK_SEND_DELIVERY, row.id, row.queue) for row in deliveries]
    return found


__all__ = ["due_for_republish", "routing_queue"]
