"""The worker's heartbeat: a thread of the worker's main process writes it from `worker_ready` until shutdown."""

from __future__ import annotations

from celery.signals import worker_ready, worker_shutdown

from intake.messaging.heartbeats import WORKER, Heartbeat, HeartbeatThread
from intake.settings import get_settings

_thread: HeartbeatThread | None = None


@worker_ready.connect
def _start(**_: object) -> None:
    global _thread
    if _thread is None:
        _thread = HeartbeatThread(Heartbeat(get_settings(), WORKER))
        _thread.start()


@worker_shutdown.connect
def _stop(**_: object) -> None:
    global _thread
    if _thread is not None:
        _thread.stop()
        _thread = None
