"""Nothing silently stops: `intake serve` on the embedded default restarts a worker or scheduler that dies, the
embedded broker survives a half-written message, and GET /pipeline tells when work is not moving. The same
for a killed worker on Redis, as production runs it."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.app import create_app
from tests.conftest import emptied_after, make_settings
from tests.factories import EMERGENCY_ANSWERS, ROUTINE_ANSWERS, submission
from tests.quiet import assert_sent_once_when_quiet
from tests.services import STAFF, RedisServer, Served, SmtpSink, Worker, alive, children_of, serve, wait_for, worker_env

pytestmark = pytest.mark.slow

FAST = {
    # The sweep's clocks short, as in the other worker tests, so that recovery finishes within a test.
    "SWEEP_INTERVAL_SECONDS": "1",
    "REPUBLISH_AFTER_SECONDS": "2",
    "SENDING_LEASE_SECONDS": "3",
    "INTAKE_RATE_LIMIT_PER_MINUTE": "0",
    "WORKER_HEARTBEAT_SECONDS": "1",
    "PIPELINE_STALE_HEARTBEAT_SECONDS": "4",
    "PIPELINE_MAX_WAIT_SECONDS": "4",
}
STAFF_DEFAULT = "frontdesk@empowerfitness.example"
"""STAFF_ALERT_EMAILS's default: `intake serve` runs with nothing configured."""


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Served]:
    for served in serve(tmp_path, FAST):
        # /ready answers before the worker is up: wait for its heartbeat (and the scheduler's).
        wait_for(lambda served=served: pipeline_ok(served), 60, "the worker and the scheduler to beat")
        yield served


def pipeline_ok(served: Served) -> bool:
    return httpx.get(f"{served.base_url}/pipeline", timeout=5).status_code == 200


def child(served: Served, command: str) -> int:
    """The pid of `intake serve`'s child running `intake <command>` (worker or beat)."""
    found = [pid for pid in children_of(served.process.pid) if _argv(pid)[-1:] == [command]]
    assert len(found) == 1, (
        f"{len(found)} children run `intake {command}`: {[_argv(p) for p in children_of(served.process.pid)]}"
    )
    return found[0]


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")[:-1]
    except FileNotFoundError:
        return []


def group(pgid: int) -> list[int]:
    """Every live process in a process group (a worker and its pool)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid and alive(int(entry.name)):
                    members.append(int(entry.name))
            except ProcessLookupError:
                continue
    return members


def restarted(served: Served, command: str, old: int) -> int:
    """Wait for a new child running `intake <command>`; its pid."""
    found: list[int] = []

    def new_one() -> bool:
        found[:] = [p for p in children_of(served.process.pid) if _argv(p)[-1:] == [command] and p != old]
        return bool(found)

    wait_for(new_one, 10, f"intake serve to start `intake {command}` again")
    return found[0]


def post(served: Served, payload: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{served.base_url}/api/intake", json=payload, timeout=15)


def eml_recipients(data: Path) -> list[str]:
    from email import message_from_bytes, policy

    folder = data / "emails"
    if not folder.exists():
        return []
    return [str(message_from_bytes(p.read_bytes(), policy=policy.default)["To"]) for p in folder.glob("*.eml")]


def quiet(served: Served, data: Path) -> list[Any]:
    return assert_sent_once_when_quiet(
        database_url=f"sqlite+aiosqlite:///{data / 'intake.db'}",
        emails=data / "emails",
        broker=data / "broker" / "queue",
        worker_logs=served.logs,
    )


def test_a_worker_killed_during_emergencies_loses_none_of_them(embedded: Served, tmp_path: Path) -> None:
    """SIGKILL to the worker's main process in the middle of a run of emergencies: each patient and the staff
    hear once, within 30 s of the kill; the pool it forked dies with it; a log line names what died."""
    data = tmp_path / "data"
    worker = child(embedded, "worker")
    pool = group(worker)
    assert len(pool) > 1  # the main process and its pool
    patients = [f"sos.{index}.{uuid.uuid4().hex[:6]}@example.com" for index in range(12)]
    statuses: list[int] = []

    def submit_all() -> None:
        for email in patients:
            statuses.append(post(embedded, submission(EMERGENCY_ANSWERS, email=email, phone=None)).status_code)
            time.sleep(0.1)

    submitting = threading.Thread(target=submit_all)
    submitting.start()
    wait_for(lambda: len(statuses) >= 4, 30, "the first submissions")
    os.kill(worker, signal.SIGKILL)
    killed_at = time.monotonic()
    submitting.join(timeout=60)
    assert statuses == [201] * len(patients)

    restarted(embedded, "worker", worker)
    wait_for(
        lambda: (
            sorted(r for r in eml_recipients(data) if r in patients) == sorted(patients)
            and eml_recipients(data).count(STAFF_DEFAULT) == len(patients)
        ),
        max(30 - (time.monotonic() - killed_at), 1),
        "every patient's email and staff alert within 30 s of the kill",
    )
    sent = quiet(embedded, data)
    assert len(sent) == 2 * len(patients)
    assert not any(alive(pid) for pid in pool), "a process of the killed worker is still running"
    logs = embedded.logs()
    assert "supervisor.worker_died" in logs and "SIGKILL" in logs


def test_a_killed_scheduler_comes_back_alone_and_still_sweeps(embedded: Served, tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert post(embedded, submission(ROUTINE_ANSWERS, email="swept@example.com", phone=None)).status_code == 201
    wait_for(lambda: "swept@example.com" in eml_recipients(data), 30, "the invitation")
    beat = child(embedded, "beat")
    os.kill(beat, signal.SIGKILL)
    new_beat = restarted(embedded, "beat", beat)
    assert not alive(beat)  # reaped, not a zombie
    assert "supervisor.scheduler_died" in embedded.logs()
    assert child(embedded, "beat") == new_beat  # one scheduler
    # A routed row made to look stuck, as if its message had been lost: the new scheduler's sweep finds it.
    with sqlite3.connect(data / "intake.db") as connection:
        connection.execute(
            "UPDATE outbox_messages SET done_at = NULL, published_at = NULL, created_at = '2000-01-01 00:00:00.000000'"
        )
    stuck_at = time.monotonic()

    def swept() -> bool:
        with sqlite3.connect(data / "intake.db") as connection:
            done, count = connection.execute("SELECT done_at, publish_count FROM outbox_messages").fetchone()
        return done is not None and count >= 1

    wait_for(swept, 20, "the restarted scheduler's sweep to publish the stuck row again")
    assert time.monotonic() - stuck_at < 20
    quiet(embedded, data)
    assert eml_recipients(data).count("swept@example.com") == 1


def test_a_second_scheduler_on_the_same_data_folder_waits(embedded: Served, tmp_path: Path) -> None:
    """As after a restart of `intake serve` while the old scheduler still ran: never two at once."""
    log_path = tmp_path / "second-beat.log"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SMTP_HOST"}}
    env.update({**FAST, "INTAKE_DATA_DIR": str(tmp_path / "data"), "LOG_LEVEL": "DEBUG"})
    with log_path.open("wb") as log_file:
        second = subprocess.Popen(
            [sys.executable, "-m", "intake.cli", "beat"], env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        wait_for(lambda: "scheduler.waiting_for_lock" in log_path.read_text(), 30, "the second scheduler to wait")
        time.sleep(3)  # three sweep intervals: it waits before it opens its schedule, so it sends nothing
        assert "scheduler.lock_acquired" not in log_path.read_text()
        assert second.poll() is None
        # Once the first is gone for good (serve restarts it, so stop serve's), the waiting one takes over.
        embedded.process.terminate()
        embedded.process.wait(timeout=30)
        wait_for(lambda: "scheduler.lock_acquired" in log_path.read_text(), 30, "the second scheduler to take over")
    finally:
        second.terminate()
        second.wait(timeout=20)


def test_pipeline_is_503_while_routing_is_stalled_and_200_after(embedded: Served, tmp_path: Path) -> None:
    """A hung worker (SIGSTOP): /pipeline names it; /ready stays 200 and submissions keep getting 201."""
    url = embedded.base_url
    worker = child(embedded, "worker")
    os.killpg(worker, signal.SIGSTOP)
    try:
        payload = submission(EMERGENCY_ANSWERS, email="stalled.patient@example.com", phone=None, first_name="Gwendolyn")
        assert post(embedded, payload).status_code == 201

        def stalled() -> bool:
            response = httpx.get(f"{url}/pipeline", timeout=5)
            codes = {r["code"] for r in response.json()["reasons"]}
            return response.status_code == 503 and {"no_worker_heartbeat", "outbox_waiting"} <= codes

        wait_for(stalled, 20, "/pipeline to say the worker is gone and a screening waits")
        response = httpx.get(f"{url}/pipeline", timeout=5)
        assert "stalled.patient" not in response.text and "Gwendolyn" not in response.text
        assert response.json()["outbox"]["count"] >= 1
        assert httpx.get(f"{url}/ready", timeout=5).status_code == 200
        assert post(embedded, submission(EMERGENCY_ANSWERS, phone=None)).status_code == 201
        assert child(embedded, "worker") == worker  # hung, not dead: nothing to restart
    finally:
        os.killpg(worker, signal.SIGCONT)
    wait_for(lambda: httpx.get(f"{url}/pipeline", timeout=5).status_code == 200, 30, "/pipeline to be 200 again")
    wait_for(lambda: "stalled.patient@example.com" in eml_recipients(tmp_path / "data"), 30, "the delayed email")


def test_a_half_written_message_file_does_not_stop_the_worker(embedded: Served, tmp_path: Path) -> None:
    """kombu's own transport died here with JSONDecodeError ('Unrecoverable error'), and routing stopped."""
    data = tmp_path / "data"
    worker = child(embedded, "worker")
    queue = data / "broker" / "queue"
    half = queue / f"{round(time.monotonic() * 1000) - 5000}_{uuid.uuid4()}.alerts.msg"
    half.write_bytes(b'{"body": "eyJ')  # a message as a writer leaves it half-way
    time.sleep(1)  # ten polls of the queue folder
    assert post(embedded, submission(EMERGENCY_ANSWERS, email="after.half@example.com", phone=None)).status_code == 201
    wait_for(lambda: "after.half@example.com" in eml_recipients(data), 30, "the emergency behind the bad file")
    wait_for(lambda: (data / "broker" / "rejected" / half.name).exists(), 30, "the bad file to be set aside")
    quiet(embedded, data)
    assert child(embedded, "worker") == worker  # never died
    logs = embedded.logs()
    assert "Unrecoverable error" not in logs and "supervisor.worker_died" not in logs
    assert "broker.message_rejected" in logs


def test_serve_killed_leaves_no_worker_or_scheduler_behind(tmp_path: Path) -> None:
    for served in serve(tmp_path, FAST):
        processes = group(child(served, "worker")) + group(child(served, "beat"))
        served.process.kill()
        served.process.wait(timeout=10)
        wait_for(
            lambda processes=processes: not any(alive(pid) for pid in processes),
            30,
            "the children to stop with intake serve",
        )


# --------------------------------------------------------------------------- production shape: Redis


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[AsyncEngine]:
    async for engine in emptied_after(pg_url):
        yield engine


async def test_a_worker_killed_on_redis_loses_no_emergency(
    pg_url: str, pg: AsyncEngine, smtp: SmtpSink, tmp_path: Path
) -> None:
    """`intake worker` on Redis and PostgreSQL, SIGKILLed mid-run and started again (as its service manager
    would): every patient and the staff hear once, within 30 s of the kill."""
    redis = RedisServer()
    redis.start()
    smtp.reset()
    env = worker_env(pg_url, redis, smtp, tmp_path / "wdata")
    worker = Worker(env, tmp_path / "worker.log")
    worker.start()
    patients = [f"redis.sos.{index}.{uuid.uuid4().hex[:6]}@example.com" for index in range(10)]
    try:
        settings = make_settings(pg_url, tmp_path / "api", broker={"redis_url": redis.url})
        async with AsyncTestClient(app=create_app(settings)) as api:
            for index, email in enumerate(patients):
                response = await api.post("/api/intake", json=submission(EMERGENCY_ANSWERS, email=email, phone=None))
                assert response.status_code == 201
                if index == 3:
                    worker.kill()
                    killed_at = time.monotonic()
                    worker = Worker(env, tmp_path / "worker2.log")
                    worker.start()
                await asyncio.sleep(0.05)

        def everyone() -> bool:
            staff = [r for r in smtp.received if set(STAFF) <= set(r.rcpt_tos)]
            return all(smtp.to(email) for email in patients) and len(staff) >= len(patients)

        wait_for(everyone, max(30 - (time.monotonic() - killed_at), 1), "every email within 30 s of the kill")
        assert_sent_once_when_quiet(database_url=pg_url, emails=smtp, broker=redis, worker_logs=worker.logs)
        assert all(len(smtp.to(email)) == 1 for email in patients)
        assert len([r for r in smtp.received if set(STAFF) <= set(r.rcpt_tos)]) == len(patients)
    finally:
        worker.stop()
        redis.stop()
