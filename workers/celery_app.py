"""The Celery app that runs the tasks: `celery -A workers.celery_app` finds `app` here.

Its configuration lives in `intake.messaging.publishing.celery_app`, which the API and the CLI use without importing
any task code; `include=["workers.tasks"]` there makes a worker load the tasks.
"""

from __future__ import annotations

from celery import Celery

from intake.messaging.publishing.celery_app import create_celery


def __getattr__(name: str) -> Celery:
    # Built on first use, so importing this module has no side effects.
    if name in {"app", "celery"}:
        global _app
        if _app is None:
            _app = create_celery()
        return _app
    raise AttributeError(name)


_app: Celery | None = None
