"""claim_follow_ups (beat, on the alerts queue): turn due follow-up rows into deliveries and queue them for
sending, in batches; no more while CLAIM_BACKLOG follow-up emails already wait to be sent."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import structlog
from celery import Task, shared_task
from sqlalchemy.orm import Session

from intake.db.base import utcnow
from intake.messaging import kinds
from intake.messaging.followups.rows import claim_due, waiting_to_send
from intake.messaging.followups.schedule import Window
from intake.settings import Settings
from workers.context import context
from workers.tasks.delivery import publish_batches

log = structlog.get_logger(__name__)

CLAIM_BACKLOG = 2000
"""Backpressure: a claim run stops while this many follow-up emails wait to be sent. Deliveries that only
wait in Redis then never grow old enough for the sweep to publish them a second time."""
RUNS = 20
"""Batches a claim run takes at most, so a backlog drains within one beat interval."""


def claim_and_publish(
    session: Session,
    settings: Settings,
    publish: Callable[[list[uuid.UUID]], object],
    backlog: int = CLAIM_BACKLOG,
) -> int:
    """Claim due follow-ups batch by batch and hand each batch's deliveries to `publish`, until nothing is
    due or `backlog` follow-up emails wait to be sent; returns how many deliveries were made."""
    window = Window.parse(settings.clinic.timezone, settings.followups.sending_window)
    made = 0
    for _ in range(RUNS):
        waiting = waiting_to_send(session, backlog)
        if waiting >= backlog:
            log.info("followups.backlog", waiting=waiting)
            break
        due = claim_due(session, window, utcnow(), settings.followups.claim_batch)
        if not due:
            break
        publish([publication.ref for publication in due])
        made += len(due)
    return made


@shared_task(name=kinds.TASK_CLAIM_FOLLOW_UPS, bind=True)
def claim_follow_ups(self: Task) -> None:
    ctx = context()
    with ctx.sessionmaker() as session:
        claim_and_publish(session, ctx.settings, lambda ids: publish_batches(self.app, ids))
