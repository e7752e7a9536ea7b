"""Heartbeats of the worker and the scheduler, written to the database every few seconds (both stacks have one).

`GET /pipeline` and `intake pipeline` read them. A worker writes from a thread of its main process; the
scheduler from its own loop (`intake.messaging.publishing.scheduler`), so that a scheduler that stopped
ticking stops beating.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time

import structlog
from sqlalchemy import Engine, delete

from intake.db import dialect
from intake.db.base import utcnow
from intake.db.models import WorkerHeartbeat
from intake.db.sync import create_sync_engine
from intake.settings import Settings

log = structlog.get_logger(__name__)

WORKER = "worker"
SCHEDULER = "scheduler"
FORGET_AFTER = dt.timedelta(hours=1)
"""Rows of processes that died without removing theirs are deleted after this."""


class Heartbeat:
    """This process's heartbeat row: `beat()` writes it (and forgets long-dead ones), `forget()` removes it."""

    def __init__(self, settings: Settings, role: str):
        self.role = role
        self.interval = settings.pipeline.heartbeat_interval
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.name = f"{role}:{self.host}:{self.pid}"[:200]
        self.started_at = utcnow()
        self._last = 0.0
        self._failing = False
        self._engine: Engine = create_sync_engine(settings.db)

    def beat(self) -> None:
        """Write the heartbeat now; never raises (a database that is down is logged once, until it is back)."""
        now = utcnow()
        try:
            with self._engine.begin() as connection:
                statement = dialect.insert(connection, WorkerHeartbeat).values(
                    name=self.name,
                    role=self.role,
                    host=self.host[:120],
                    pid=self.pid,
                    started_at=self.started_at,
                    beat_at=now,
                )
                connection.execute(
                    statement.on_conflict_do_update(
                        index_elements=["name"], set_={"beat_at": statement.excluded.beat_at}
                    )
                )
                connection.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.beat_at < now - FORGET_AFTER))
        except Exception as exc:
            if not self._failing:
                log.warning("heartbeat.failed", role=self.role, error=type(exc).__name__)
            self._failing = True
            return
        if self._failing:
            log.info("heartbeat.recovered", role=self.role)
        self._failing = False
        self._last = time.monotonic()

    def beat_if_due(self) -> None:
        if time.monotonic() - self._last >= self.interval:
            self.beat()

    def forget(self) -> None:
        """Remove this process's row: it stops cleanly, and no reader should count it."""
        try:
            with self._engine.begin() as connection:
                connection.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.name == self.name))
        except Exception as exc:
            log.warning("heartbeat.forget_failed", role=self.role, error=type(exc).__name__)
        self._engine.dispose()


class HeartbeatThread:
    """A daemon thread that beats every `interval` seconds until `stop()`."""

    def __init__(self, heartbeat: Heartbeat):
        self.heartbeat = heartbeat
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{heartbeat.role}-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self.heartbeat.beat()
            self._stopped.wait(self.heartbeat.interval)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self.heartbeat.forget()


__all__ = ["SCHEDULER", "WORKER", "Heartbeat", "HeartbeatThread"]
