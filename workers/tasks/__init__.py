"""Celery tasks: thin, named explicitly, ids in, idempotent. Importing this registers them all."""

from workers import heartbeat  # noqa: F401 - the worker's heartbeat starts with the worker that loads these
from workers.tasks import delivery, followups, routing, sweep

__all__ = ["delivery", "followups", "routing", "sweep"]
