"""Celery tasks: thin, named explicitly, ids in, idempotent. Importing this registers them all."""

from workers.tasks import delivery, routing, sweep

__all__ = ["delivery", "routing", "sweep"]
