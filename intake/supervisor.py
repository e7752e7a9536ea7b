"""What `intake serve` runs beside the API on the embedded default (the worker, the scheduler), kept running.

Each child is its own process group, so that everything it forked (the worker's pool) can be signalled at
once, and asks the kernel for SIGTERM when `intake serve` dies, even by SIGKILL (`die_with_parent`, in the
child). A thread of `intake serve` waits on the children; one that exits, whatever the cause, is logged by
name, its whole group is killed (no orphaned pool process keeps running), and it is started again: at
once the first time, then after 1, 2, 4 and at most 8 seconds while it keeps dying within a minute.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)

PARENT_ENV = "INTAKE_SUPERVISOR_PID"
"""Set in a supervised child's environment: the pid of the `intake serve` it must not outlive."""
POLL_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 8.0
STEADY_AFTER_SECONDS = 60.0
"""A child that ran this long before it died is restarted at once, as on its first death."""


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    restart_at: float | None = None
    restarts: int = 0


class Supervisor:
    """Starts the children, restarts each one that exits, and stops them all (SIGTERM, then SIGKILL)."""

    def __init__(self, children: dict[str, Sequence[str]]):
        self.children = [Child(name, argv) for name, argv in children.items()]
        self._stopping = threading.Event()
        self._started = threading.Event()
        # PR_SET_PDEATHSIG fires when the *thread* that started a child ends: this thread starts every child
        # and lives as long as `intake serve`.
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._started.wait(timeout=30)

    def pids(self) -> dict[str, int | None]:
        return {c.name: c.process.pid if c.process is not None else None for c in self.children}

    def _run(self) -> None:
        for child in self.children:
            self._spawn(child)
        self._started.set()
        while not self._stopping.wait(POLL_SECONDS):
            for child in self.children:
                try:
                    self._check(child)
                except Exception as exc:  # a supervisor that stops supervising is the failure we exist to prevent
                    log.exception("supervisor.error", child=child.name, error=type(exc).__name__)

    def _spawn(self, child: Child) -> None:
        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        try:
            child.process = subprocess.Popen(child.argv, env=env, process_group=0)  # noqa: S603 - our own argv
        except OSError as exc:
            log.error("supervisor.start_failed", child=child.name, error=type(exc).__name__)
            child.process = None
            self._schedule_restart(child, time.monotonic())
            return
        child.started_at = time.monotonic()
        child.restart_at = None
        log.info("supervisor.started", child=child.name, pid=child.process.pid, restarts=child.restarts)

    def _check(self, child: Child) -> None:
        now = time.monotonic()
        if child.process is None:
            if child.restart_at is not None and now >= child.restart_at and not self._stopping.is_set():
                child.restarts += 1
                self._spawn(child)
            return
        code = child.process.poll()  # waitpid: reaps it, no zombie is left behind
        if code is None:
            return
        pid = child.process.pid
        child.process = None
        if self._stopping.is_set():
            _kill_group(pid, signal.SIGKILL)
            return
        delay = self._schedule_restart(child, now)  # first: nothing below may keep it from coming back
        _kill_group(pid, signal.SIGKILL)  # what it forked dies with it
        log.error(
            f"supervisor.{child.name}_died",
            child=child.name,
            pid=pid,
            how=_how(code),
            ran_seconds=round(now - child.started_at, 1),
            restart_in_seconds=delay,
        )

    def _schedule_restart(self, child: Child, now: float) -> float:
        if child.started_at and now - child.started_at >= STEADY_AFTER_SECONDS:
            child.quick_deaths = 0
        delay = 0.0 if child.quick_deaths == 0 else min(2.0 ** (child.quick_deaths - 1), MAX_BACKOFF_SECONDS)
        child.quick_deaths += 1
        child.restart_at = now + delay
        return delay

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM every child (the worker then stops its pool after the tasks in hand), wait up to `timeout`
        for them, then SIGKILL whatever is left of their groups."""
        self._stopping.set()
        self._thread.join(timeout=5)
        running = [c.process for c in self.children if c.process is not None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.warning("supervisor.kill_after_timeout", pid=process.pid)
            _kill_group(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)


def _how(code: int) -> str:
    if code >= 0:
        return f"exited with status {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def die_with_parent() -> None:
    """In a supervised child: SIGTERM from the kernel when `intake serve` dies, even by SIGKILL (Linux).

    Asked for after the fact, so the parent may already be gone: then exit at once rather than run orphaned."""
    expected = os.environ.get(PARENT_ENV)
    if not expected:
        return
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != int(expected):
        raise SystemExit("intake serve, which started this process, is gone")


__all__ = ["PARENT_ENV", "Supervisor", "die_with_parent"]
