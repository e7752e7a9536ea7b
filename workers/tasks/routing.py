"""route_screening: record a screening's deliveries, then queue each for sending."""

from __future__ import annotations

import uuid

from celery import Task, shared_task
from sqlalchemy.exc import OperationalError

from intake.leads.follow_through import route_screening as route
from intake.messaging import kinds
from intake.messaging.publishing.celery_app import CeleryBroker
from intake.messaging.publishing.publication import Publication
from intake.messaging.publishing.publisher import Publisher
from workers.context import context


@shared_task(
    name=kinds.TASK_ROUTE_SCREENING,
    bind=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=8,
)
def route_screening(self: Task, outbox_id: str) -> None:
    ctx = context()
    with ctx.sessionmaker() as session:
        pending = route(session, uuid.UUID(outbox_id), ctx.settings)
    Publisher(CeleryBroker(self.app)).publish(
        Publication(kinds.TASK_SEND_DELIVERY, delivery_id, queue) for delivery_id, queue in pending
    )
