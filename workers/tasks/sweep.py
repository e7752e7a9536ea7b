"""sweep (beat): publish again the outbox rows and deliveries that are not done by their deadline."""

from __future__ import annotations

import structlog
from celery import Task, shared_task

from intake.db.housekeeping import purge_expired
from intake.messaging import kinds
from intake.messaging.outbox import due_for_republish
from intake.messaging.publishing.celery_app import CeleryBroker
from intake.messaging.publishing.publisher import Publisher
from workers.context import context

log = structlog.get_logger(__name__)


@shared_task(name=kinds.TASK_SWEEP, bind=True)
def sweep(self: Task) -> None:
    ctx = context()
    with ctx.sessionmaker() as session:
        due = due_for_republish(session, ctx.settings.messaging)
        purge_expired(session, idempotency_ttl_hours=ctx.settings.intake.idempotency_ttl_hours)
    if due:
        sent = Publisher(CeleryBroker(self.app)).publish(due)
        log.info("sweep.republished", found=len(due), published=sent)
