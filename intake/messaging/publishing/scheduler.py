"""The scheduler (Celery beat) as intake runs it: one at a time per data folder, with a heartbeat from its loop.

Two schedulers would publish every sweep and claim twice (and share one schedule file). A scheduler holds
an exclusive lock on `scheduler.lock` in the data folder from before it opens its schedule until it exits;
the kernel lets go of it when the process dies, even by SIGKILL. A second one waits for the lock, saying so
in the log, and takes over only once the first is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Any

import structlog
from celery.beat import PersistentScheduler

from intake.messaging.heartbeats import SCHEDULER, Heartbeat
from intake.settings import get_settings

log = structlog.get_logger(__name__)

LOCK_FILE = "scheduler.lock"


class SchedulerLock:
    """An exclusive flock on a file, held until `release()` or the end of the process."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        # For a person looking: which process holds it.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def acquire(self, poll: float = 1.0) -> None:
        """Wait until the lock is ours, logging once that another scheduler holds it."""
        waiting_since = None
        while not self.try_acquire():
            if waiting_since is None:
                waiting_since = time.monotonic()
                log.warning("scheduler.waiting_for_lock", lock=str(self.path))
            time.sleep(poll)
        if waiting_since is not None:
            log.info("scheduler.lock_acquired", waited_seconds=round(time.monotonic() - waiting_since, 1))

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class SingleScheduler(PersistentScheduler):
    """Celery's persistent scheduler, once per data folder, beating from its loop.

    Celery also builds a scheduler with `lazy=True` only to print its banner; that one never sets up its
    schedule, and so neither takes the lock nor beats."""

    _lock: SchedulerLock | None = None
    _heartbeat: Heartbeat | None = None

    def setup_schedule(self) -> None:
        settings = get_settings()
        self._lock = SchedulerLock(settings.app.data_dir / LOCK_FILE)
        self._lock.acquire()
        self._heartbeat = Heartbeat(settings, SCHEDULER)
        self._heartbeat.beat()
        super().setup_schedule()

    def tick(self, *args: Any, **kwargs: Any) -> float:
        interval: float = super().tick(*args, **kwargs)
        if self._heartbeat is not None:
            self._heartbeat.beat_if_due()
        return interval

    def close(self) -> None:
        super().close()
        if self._heartbeat is not None:
            self._heartbeat.forget()
            self._heartbeat = None
        if self._lock is not None:
            self._lock.release()


__all__ = ["LOCK_FILE", "SchedulerLock", "SingleScheduler"]
