"""claim_follow_ups (beat): turn due follow-up rows into deliveries and queue them for sending."""

from __future__ import annotations

from celery import Task, shared_task

from intake.db.base import utcnow
from intake.messaging import kinds
from intake.messaging.followups import Window, claim_due
from intake.messaging.publisher import Publisher
from workers.celery_app import CeleryBroker
from workers.context import context


@shared_task(name=kinds.TASK_CLAIM_FOLLOW_UPS, bind=True)
def claim_follow_ups(self: Task) -> None:
    ctx = context()
    settings = ctx.settings
    window = Window.parse(settings.clinic.timezone, settings.followups.sending_window)
    with ctx.sessionmaker() as session:
        # Several batches a run, so a backlog drains within one beat interval.
        for _ in range(20):
            due = claim_due(session, window, utcnow(), settings.followups.claim_batch)
            if not due:
                break
            Publisher(CeleryBroker(self.app)).publish(due)
