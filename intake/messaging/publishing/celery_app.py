"""The one Celery("intake") app's configuration (Redis, or the embedded file broker), and publishing by task name.

The tasks themselves live in `workers/`; the API and the CLI need only this module, never the task code."""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu.entity import Queue

from intake.messaging import kinds
from intake.messaging.publishing import file_broker
from intake.messaging.publishing.publication import Publication
from intake.settings import Settings, get_settings


def broker_options(settings: Settings) -> tuple[str, dict[str, Any]]:
    if settings.broker.redis_url:
        # Above the longest task plus its longest retry delay, or Redis hands a running task out twice.
        return settings.broker.redis_url, {"visibility_timeout": settings.broker.visibility_timeout}
    folder = settings.app.data_dir / "broker"
    for sub in ("queue", "control", "unacked"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    # Our filesystem transport (file_broker): kombu's own can hand a worker a message file that is still
    # empty, and the worker dies of it (celery/kombu#1551).
    return f"{file_broker.SCHEME}://", {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "control_folder": str(folder / "control"),
        "unacked_folder": str(folder / "unacked"),
        "rejected_folder": str(folder / "rejected"),
        "polling_interval": 0.1,
    }


def create_celery(settings: Settings | None = None, *, fail_fast: bool = False) -> Celery:
    """The Celery app; `fail_fast` for publishers that must not wait on a broker that is down (the API)."""
    settings = settings or get_settings()
    broker_url, transport_options = broker_options(settings)
    if fail_fast:
        # kombu otherwise retries the connection for seconds inside publish, even with retry=False.
        transport_options = {**transport_options, "max_retries": 0}
    app = Celery("intake", broker=broker_url, include=["workers.tasks"])
    app.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # A task whose broker connection is gone cannot be acked; Redis hands it out again.
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        task_default_queue=kinds.DEFAULT_QUEUE,
        task_queues=[Queue(kinds.ALERTS_QUEUE), Queue(kinds.DEFAULT_QUEUE)],
        task_create_missing_queues=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,  # our handler writes to stderr; a proxy back into logging loops
        worker_send_task_events=False,
        task_send_sent_event=False,
        beat_schedule={
            "sweep": {
                "task": kinds.TASK_SWEEP,
                "schedule": settings.messaging.sweep_interval,
                "options": {"queue": kinds.ALERTS_QUEUE, "expires": settings.messaging.sweep_interval},
            },
            "claim-follow-ups": {
                "task": kinds.TASK_CLAIM_FOLLOW_UPS,
                "schedule": settings.followups.claim_interval,
                # On the alerts queue: behind thousands of queued emails it would wait past its expiry.
                "options": {"queue": kinds.ALERTS_QUEUE, "expires": settings.followups.claim_interval},
            },
        },
        # One scheduler per data folder, beating from its loop; it wakes at least once a heartbeat.
        beat_scheduler="intake.messaging.publishing.scheduler:SingleScheduler",
        beat_max_loop_interval=settings.pipeline.heartbeat_interval,
        timezone="UTC",
    )
    return app


class CeleryBroker:
    """Publishes by task name, so the API never imports task code."""

    def __init__(self, app: Celery):
        self._app = app

    def send(self, publication: Publication) -> None:
        # No publish retries: with the broker down the request must not wait; the sweep publishes later.
        self._app.send_task(publication.task, args=[str(publication.ref)], queue=publication.queue, retry=False)
