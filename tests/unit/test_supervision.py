"""The supervisor of `intake serve`'s children and the scheduler's lock, on stand-in processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.support import wait_for
from intake.messaging.publishing.scheduler import SchedulerLock
from intake.supervisor import Supervisor


def test_one_scheduler_lock_at_a_time(tmp_path: Path) -> None:
    first, second = SchedulerLock(tmp_path / "scheduler.lock"), SchedulerLock(tmp_path / "scheduler.lock")
    assert first.try_acquire()
    assert not second.try_acquire()
    first.release()
    assert second.try_acquire()
    second.release()


@pytest.mark.slow  # spawns processes
def test_a_scheduler_killed_by_sigkill_lets_go_of_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "scheduler.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from intake.messaging.publishing.scheduler import SchedulerLock; "
            f"assert SchedulerLock(Path({str(path)!r})).try_acquire(); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        lock = SchedulerLock(path)
        assert not lock.try_acquire()
        holder.kill()
        holder.wait(timeout=10)
        assert lock.try_acquire()
        lock.release()
    finally:
        holder.kill()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


# A stand-in for the worker: it forks a "pool" child into its own process group, prints both pids, and waits.
FORKING = (
    "import os, sys, time\n"
    "child = os.fork()\n"
    "if child == 0:\n"
    "    time.sleep(120); os._exit(0)\n"
    "print(os.getpid(), child, flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.mark.slow  # spawns processes
def test_a_killed_child_is_restarted_and_what_it_forked_dies_with_it(tmp_path: Path) -> None:
    out = tmp_path / "pids"
    script = f"import sys; sys.stdout = open({str(out)!r}, 'a'); exec({FORKING!r})"
    supervisor = Supervisor({"worker": [sys.executable, "-c", script]})
    supervisor.start()
    try:
        wait_for(lambda: out.exists() and len(out.read_text().splitlines()) == 1, 20, "the first worker")
        leader, pool = (int(pid) for pid in out.read_text().split())
        assert os.getpgid(pool) == leader  # the child's own group: signalled as one
        os.kill(leader, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(lambda: len(out.read_text().splitlines()) == 2, 20, "the restarted worker")
        assert time.monotonic() - killed_at < 10
        new_leader = int(out.read_text().splitlines()[1].split()[0])
        assert new_leader != leader and supervisor.pids()["worker"] == new_leader
        wait_for(lambda: not _alive(pool), 10, "the killed worker's pool child to die with it")
        assert not _alive(leader)  # reaped: no zombie
    finally:
        supervisor.stop(timeout=5)
    pids = [int(pid) for line in out.read_text().splitlines() for pid in line.split()]
    wait_for(lambda: not any(_alive(pid) for pid in pids), 10, "every process to stop with the supervisor")


@pytest.mark.slow  # spawns processes
def test_a_child_that_keeps_dying_is_restarted_with_growing_delays() -> None:
    supervisor = Supervisor({"scheduler": [sys.executable, "-c", "raise SystemExit(3)"]})
    supervisor.start()
    try:
        wait_for(lambda: supervisor.children[0].restarts >= 3, 20, "three restarts")
        child = supervisor.children[0]
        assert child.quick_deaths >= 3
        assert child.restart_at is None or child.restart_at - time.monotonic() <= 8
    finally:
        supervisor.stop(timeout=5)


@pytest.mark.slow  # spawns processes
def test_a_supervised_child_does_not_outlive_its_supervisor(tmp_path: Path) -> None:
    """`intake serve` killed by SIGKILL: the kernel sends its children SIGTERM (PR_SET_PDEATHSIG)."""
    out = tmp_path / "pid"
    child = (
        "import os, sys, time; from intake.supervisor import die_with_parent; die_with_parent(); "
        f"open({str(out)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    )
    serve = (
        "import sys, time; from intake.supervisor import Supervisor; "
        f"Supervisor({{'worker': [sys.executable, '-c', {child!r}]}}).start(); time.sleep(120)"
    )
    parent = subprocess.Popen([sys.executable, "-c", serve])
    try:
        wait_for(lambda: out.exists() and out.read_text() != "", 20, "the child to start")
        pid = int(out.read_text())
        parent.kill()
        parent.wait(timeout=10)
        wait_for(lambda: not _alive(pid), 10, "the child to stop with its supervisor")
    finally:
        parent.kill()
