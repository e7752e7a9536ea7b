"""send_delivery: send one email or webhook at most once; retry temporary failures with backoff."""

from __future__ import annotations

import uuid

from celery import Task, shared_task
from sqlalchemy.exc import OperationalError

from intake.messaging import kinds
from workers.context import context


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
