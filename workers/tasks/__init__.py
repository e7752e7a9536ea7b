"""Celery tasks: thin, named explicitly, ids in, idempotent. Importing this registers them all."""

from workers.tasks import delivery, followups, routing, sweep

__all__ = ["delivery", "followups", "routing", "sweep"]
