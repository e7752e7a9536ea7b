"""send_delivery: send one email or webhook at most once; retry temporary failures with backoff.
send_deliveries: the same for a batch of ids, one after the other on one connection (follow-ups)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import structlog
from celery import Celery, Task, shared_task
from sqlalchemy.exc import OperationalError

from intake.messaging import kinds
from workers.context import context

log = structlog.get_logger(__name__)

SEND_BATCH = 20
"""Deliveries per send_deliveries task: fewer tasks (Celery's own cost per task) and one connection each."""


@shared_task(
    name=kinds.TASK_SEND_DELIVERY,
    bind=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=None,  # the delivery row counts attempts and declares it dead
)
def send_delivery(self: Task, delivery_id: str) -> None:
    outcome = context().sender.send(uuid.UUID(delivery_id))
    if outcome.status == "retry":
        raise self.retry(countdown=outcome.retry_in)


@shared_task(
    name=kinds.TASK_SEND_DELIVERIES,
    bind=True,
    autoretry_for=(OperationalError,),  # again whole: what was sent is skipped, its claim says so
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=None,
)
def send_deliveries(self: Task, delivery_ids: list[str]) -> None:
    ids = [uuid.UUID(delivery_id) for delivery_id in delivery_ids]
    outcomes = context().sender.send_many(ids)
    for delivery_id, outcome in zip(ids, outcomes, strict=True):
        if outcome.status != "retry":
            continue
        try:
            # A retry goes alone, as a send_delivery task; if it cannot be published, the sweep does it.
            self.app.send_task(
                kinds.TASK_SEND_DELIVERY,
                args=[str(delivery_id)],
                queue=kinds.DEFAULT_QUEUE,
                countdown=outcome.retry_in,
                retry=False,
            )
        except Exception as exc:
            log.warning("publish.failed", task=kinds.TASK_SEND_DELIVERY, ref=str(delivery_id), error=type(exc).__name__)


def publish_batches(app: Celery, delivery_ids: Sequence[uuid.UUID], queue: str = kinds.DEFAULT_QUEUE) -> int:
    """send_deliveries tasks of up to SEND_BATCH ids each; returns how many ids went out. Never raises:
    a delivery whose batch could not be published stays queued, and the sweep publishes it later."""
    published = 0
    for start in range(0, len(delivery_ids), SEND_BATCH):
        chunk = [str(delivery_id) for delivery_id in delivery_ids[start : start + SEND_BATCH]]
        try:
            app.send_task(kinds.TASK_SEND_DELIVERIES, args=[chunk], queue=queue, retry=False)
            published += len(chunk)
        except Exception as exc:
            log.warning("publish.failed", task=kinds.TASK_SEND_DELIVERIES, count=len(chunk), error=type(exc).__name__)
    return published
