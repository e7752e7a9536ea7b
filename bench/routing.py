"""Routing benchmark: real API, real Celery worker, own Redis, PostgreSQL and an aiosmtpd sink.

Measures two things, the way production runs them (`intake serve --no-worker` and `intake worker
--beat` as subprocesses, README defaults for every setting except the addresses):

1. **Emergency latency**: the wall time from the `201` of an emergency submission to the staff
   alert accepted by the SMTP server (the sink timestamps each message in `handle_DATA`), over
   `--submissions` screens sent one every `--interval-ms` (latency, not a queue). The
   seek-care-now email to the patient is reported beside it. Targets: p50 <= 250 ms, p99 <= 1 s.
2. **Email throughput** of one worker: `--emails` booking invitations seeded as `queued`
   deliveries straight into the database, one `intake.send_delivery` task published per
   delivery, timed from the first publish until the sink has accepted all of them. Then every
   delivery must be `sent` and the sink must hold each exactly once. Target: >= 200 emails/s.

The database (`--database-url`, created if missing, migrated) is dropped at the end (or
truncated when it is not the benchmark's own); every process started here is stopped, also on
errors and Ctrl-C. Results go to stdout and to `bench/results/routing.json`.

    python -m bench.routing [--submissions 200] [--emails 2000] [--concurrency N]
                            [--database-url postgresql+asyncpg://...] [--profile DIR]

(Run it as a module from the repository root: as a script, bench/intake.py would shadow the
`intake` package.)
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import dataclasses
import email
import email.policy
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from email.parser import BytesHeaderParser
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

import intake
from intake.db.base import new_id, utcnow
from intake.db.migrate import upgrade_head
from intake.db.models import Delivery, Lead, Screening
from intake.db.sync import sync_url
from intake.messaging import kinds
from intake.screening import load_catalog
from intake.settings import load_settings
from workers.celery_app import create_celery

DEFAULT_DATABASE = "intake_bench_routing"
DEFAULT_DATABASE_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DEFAULT_DATABASE}"
RULE_SET_VERSION = "2026-11.1"
STAFF = ("frontdesk@clinic.bench", "lead-pt@clinic.bench")
REPO = Path(intake.__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "routing.json"

ROUTINE_ANSWERS: dict[str, Any] = {
    "pain_area": ["lower_back"],
    "pain_now": 4,
    "duration": "under_24h",
    "injury": "none",
    "improving": "better",
    "age": 35,
}
EMERGENCY_ANSWERS: dict[str, Any] = {**ROUTINE_ANSWERS, "bladder_bowel": True, "pain_now": 8}

TARGET_P50_MS = 250.0
TARGET_P99_MS = 1000.0
TARGET_EMAILS_PER_SECOND = 200.0

_LEAD_LINE = re.compile(r"^Lead: ([0-9a-f-]{36})\s*$", re.MULTILINE)


# --------------------------------------------------------------------------- small helpers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "min": round(min(ms), 1),
        "p50": round(percentile(ms, 50), 1),
        "p95": round(percentile(ms, 95), 1),
        "p99": round(percentile(ms, 99), 1),
        "max": round(max(ms), 1),
        "mean": round(sum(ms) / len(ms), 1),
    }


def fmt(stats: dict[str, float]) -> str:
    return "  ".join(f"{k} {stats[k]:7.1f}" for k in ("p50", "p95", "p99", "max")) + " ms"


# --------------------------------------------------------------------------- SMTP sink


@dataclasses.dataclass(frozen=True, slots=True)
class Accepted:
    at: float
    """time.time() when DATA was complete, just before the 250 reply."""
    rcpt_tos: tuple[str, ...]
    raw: bytes


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        at = time.time()
        accepted = Accepted(at, tuple(envelope.rcpt_tos), bytes(envelope.content))
        with self._sink.lock:
            self._sink.accepted.append(accepted)
        return "250 Message accepted for delivery"


class SmtpSink:
    """aiosmtpd on loopback, on its own thread; keeps each accepted message with its timestamp."""

    def __init__(self) -> None:
        self.port = free_port()
        self.lock = threading.Lock()
        self.accepted: list[Accepted] = []
        self._controller = Controller(_SinkHandler(self), hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def count(self) -> int:
        with self.lock:
            return len(self.accepted)

    def snapshot(self) -> list[Accepted]:
        with self.lock:
            return list(self.accepted)

    def clear(self) -> None:
        with self.lock:
            self.accepted.clear()


def is_staff_alert(message: Accepted) -> bool:
    return set(message.rcpt_tos) == set(STAFF)


def plain_text(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    body = message.get_body(preferencelist=("plain",))
    return str(body.get_content()) if body is not None else ""


def delivery_header(raw: bytes) -> str:
    headers = BytesHeaderParser(policy=email.policy.default).parsebytes(raw)
    return str(headers.get("X-Intake-Delivery", "")).strip()


# --------------------------------------------------------------------------- processes


class RedisServer:
    """A redis-server of our own on a free port: the benchmark's queues share nothing."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self._folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(self._answers, 10, "redis-server to start")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def version(self) -> str:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False)
        found = re.search(r"v=(\S+)", out.stdout)
        return found.group(1) if found else "?"

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 20) -> None:
    """SIGTERM the process group we started (its own session), SIGKILL it if it lingers."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


class Service:
    """An `intake` command as a subprocess in its own session, its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self._argv = [sys.executable, "-m", "intake.cli", *args]
        self._env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                self._argv,
                env=self._env,
                cwd=REPO,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    def children(self) -> list[int]:
        if self.process is None:
            return []
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        with contextlib.suppress(OSError):
            return [int(pid) for pid in path.read_text().split()]
        return []

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


class Profiler:
    """Optional: py-spy recording a worker and its pool children while a phase runs."""

    def __init__(self, binary: str | None, folder: Path | None) -> None:
        self._binary = binary
        self._folder = folder
        self._process: subprocess.Popen[bytes] | None = None

    @contextlib.contextmanager
    def record(self, name: str, pid: int | None) -> Iterator[None]:
        if self._binary is None or self._folder is None or pid is None:
            yield
            return
        self._folder.mkdir(parents=True, exist_ok=True)
        out = self._folder / f"{name}.txt"
        self._process = subprocess.Popen(
            [
                self._binary,
                "record",
                "--pid",
                str(pid),
                "--subprocesses",
                "--idle",
                "--rate",
                "250",
                "--format",
                "raw",
                "--output",
                str(out),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(self._folder / f"{name}.log").open("wb"),
            start_new_session=True,
        )
        time.sleep(1.0)  # py-spy attaches
        try:
            yield
        finally:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
            print(f"  profile: {out}")


# --------------------------------------------------------------------------- CPU accounting

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int | None) -> float:
    """User + system CPU seconds of a live process (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy() -> float:
    """CPU seconds the whole machine spent not idle (all cores, every process)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
    return pids


def cpu_snapshot(worker: Service, redis: RedisServer) -> dict[str, float]:
    return {
        "worker_main": process_cpu(worker.process.pid if worker.process else None),
        "worker_children (pool + beat)": sum(process_cpu(pid) for pid in worker.children()),
        "postgres (all backends)": sum(process_cpu(pid) for pid in postgres_pids()),
        "redis (ours)": process_cpu(redis.process.pid if redis.process else None),
        "bench (publisher + smtp sink)": process_cpu(os.getpid()),
        "machine": machine_busy(),
    }


def cpu_used(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Cores each part kept busy over `seconds` (a 2-core machine has 2.0 to give)."""
    return {name: round((after[name] - before[name]) / seconds, 2) for name in before}


# --------------------------------------------------------------------------- database


class BenchDatabase:
    """The benchmark's PostgreSQL database: created if missing, migrated, dropped (or truncated)."""

    TABLES = ("deliveries", "outbox_messages", "consents", "idempotency_records", "screenings", "leads")

    def __init__(self, url: str) -> None:
        if not url.startswith("postgresql"):
            raise SystemExit("--database-url must be a PostgreSQL URL (postgresql+asyncpg://...)")
        self.url = url
        parsed = make_url(sync_url(url))
        self.name = parsed.database or ""
        self._admin_url = parsed.set(database="postgres")
        self._owned = False
        self.engine: Engine | None = None

    def _admin(self, sql: str) -> list[Any]:
        admin = create_engine(self._admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                result = connection.execute(text(sql))
                return list(result.all()) if result.returns_rows else []
        finally:
            admin.dispose()

    def setup(self) -> None:
        exists = self._admin(f"SELECT 1 FROM pg_database WHERE datname = '{self.name}'")
        if not exists:
            self._admin(f'CREATE DATABASE "{self.name}"')
        # Ours to drop: created here, or the benchmark's own name left behind by a killed run.
        self._owned = not exists or self.name == DEFAULT_DATABASE
        upgrade_head(self.url)
        self.engine = create_engine(sync_url(self.url), hide_parameters=True)
        self.truncate()

    def version(self) -> str:
        assert self.engine is not None
        with self.engine.connect() as connection:
            return str(connection.execute(text("SHOW server_version")).scalar_one())

    def truncate(self) -> None:
        assert self.engine is not None
        with self.engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {', '.join(self.TABLES)}"))

    def teardown(self) -> None:
        if self.engine is not None:
            if not self._owned:
                with contextlib.suppress(Exception):
                    self.truncate()
            self.engine.dispose()
            self.engine = None
        if self._owned:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


# --------------------------------------------------------------------------- phase 1: latency


def submission(answers: dict[str, Any], address: str, language: str = "en") -> dict[str, Any]:
    # No phone: a shared phone would make every submission the same lead.
    return {
        "language": language,
        "contact": {
            "first_name": "Rosa",
            "last_name": "Delgado",
            "email": address,
            "preferred_contact": "email",
            "location": "boca_raton",
            "zip": "33431",
        },
        "consent": {"privacy": True, "email_followup": True, "sms": False},
        "answers": copy.deepcopy(answers),
    }


@dataclasses.dataclass(slots=True)
class Submitted:
    lead_id: str
    address: str
    sent_at: float
    created_at: float
    """time.time() when the 201 arrived."""


def submit_emergencies(
    client: httpx.Client, count: int, interval: float, prefix: str, api: Service
) -> list[Submitted]:
    """Open loop: the i-th request leaves at start + i*interval (or at once if behind)."""
    submitted: list[Submitted] = []
    start = time.monotonic()
    for i in range(count):
        delay = start + i * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        address = f"{prefix}.{i}@example.com"
        sent_at = time.time()
        response = client.post("/api/intake", json=submission(EMERGENCY_ANSWERS, address))
        created_at = time.time()
        if response.status_code != 201:
            api.check_alive()
            raise RuntimeError(f"submission {i}: HTTP {response.status_code} {response.text[:300]}")
        body = response.json()
        if body["route"] != "seek_care_now":
            raise RuntimeError(f"submission {i} was routed {body['route']}, not seek_care_now")
        submitted.append(Submitted(body["lead_id"], address, sent_at, created_at))
    return submitted


def run_latency(
    base_url: str,
    sink: SmtpSink,
    api: Service,
    worker: Service,
    profiler: Profiler,
    count: int,
    interval: float,
    warmup: int,
) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    with httpx.Client(base_url=base_url, timeout=30) as client:
        if warmup:
            # Each pool child builds its engine, templates and SMTP connection on its first task.
            submit_emergencies(client, warmup, interval, f"warmup.{run}", api)
            wait_for(lambda: sink.count() >= 2 * warmup, 60, "the warm-up emails")
            time.sleep(0.5)
            sink.clear()
        print(f"  submitting {count} emergency screens, one every {interval * 1000:.0f} ms ...", flush=True)
        with profiler.record("latency", worker.process.pid if worker.process else None):
            submitted = submit_emergencies(client, count, interval, f"bench.{run}", api)
            submit_span = submitted[-1].created_at - submitted[0].sent_at

            def all_alerted() -> bool:
                worker.check_alive()
                return sum(1 for m in sink.snapshot() if is_staff_alert(m)) >= count

            wait_for(all_alerted, 120, "every staff alert", interval=0.05)
            time.sleep(2.0)  # anything sent twice arrives by now

    by_lead = {s.lead_id: s for s in submitted}
    by_address = {s.address: s for s in submitted}
    if len(by_lead) != count:
        raise RuntimeError(f"{count} submissions gave {len(by_lead)} distinct leads")
    alerts: dict[str, list[float]] = collections.defaultdict(list)
    patients: dict[str, list[float]] = collections.defaultdict(list)
    for message in sink.snapshot():
        if is_staff_alert(message):
            found = _LEAD_LINE.search(plain_text(message.raw))
            if found is None:
                raise RuntimeError("a staff alert without a lead id")
            alerts[found.group(1)].append(message.at)
        else:
            for address in message.rcpt_tos:
                patients[address].append(message.at)
    missing = [lead for lead in by_lead if lead not in alerts]
    duplicates = sum(len(times) - 1 for times in alerts.values() if len(times) > 1)
    patient_missing = [a for a in by_address if a not in patients]
    if missing or set(alerts) - set(by_lead):
        raise RuntimeError(f"staff alerts: {len(missing)} missing, {len(set(alerts) - set(by_lead))} unknown")
    staff_latency = [min(alerts[lead]) - s.created_at for lead, s in by_lead.items()]
    patient_latency = [min(patients[a]) - s.created_at for a, s in by_address.items() if a in patients]
    round_trip = [s.created_at - s.sent_at for s in submitted]
    return {
        "submissions": count,
        "interval_ms": interval * 1000,
        "warmup_submissions": warmup,
        "submit_span_s": round(submit_span, 2),
        "staff_alert_latency_ms": summary_ms(staff_latency),
        "seek_care_now_latency_ms": summary_ms(patient_latency),
        "http_201_round_trip_ms": summary_ms(round_trip),
        "staff_alert_duplicates": duplicates,
        "seek_care_now_missing": len(patient_missing),
        "seek_care_now_duplicates": sum(len(t) - 1 for t in patients.values() if len(t) > 1),
        "targets_ms": {"p50": TARGET_P50_MS, "p99": TARGET_P99_MS},
    }


# --------------------------------------------------------------------------- phase 2: throughput


def seed_invitations(engine: Engine, count: int, prefix: str) -> list[uuid.UUID]:
    """`count` book_consultation leads, each with its screening and a queued booking invitation."""
    catalog = load_catalog()
    rule_set = catalog.get(RULE_SET_VERSION)
    answers, errors = catalog.questionnaire.validate(ROUTINE_ANSWERS)
    if errors:
        raise RuntimeError(f"routine answers do not validate: {errors}")
    assessment = rule_set.assess(answers)
    if assessment.route.value != "book_consultation":
        raise RuntimeError(f"routine answers route to {assessment.route.value}")
    reasons = {
        lang: [
            {"code": r.code, "tier": r.tier.value, "text": r.text} for r in rule_set.reasons(assessment, lang)
        ]
        for lang in ("en", "es")
    }
    now = utcnow()
    leads: list[dict[str, Any]] = []
    screenings: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    for i in range(count):
        lang = "es" if i % 4 == 3 else "en"
        lead_id, screening_id, delivery_id = new_id(), new_id(), new_id()
        triage = {
            "tier": assessment.tier.value,
            "route": assessment.route.value,
            "score": assessment.score,
        }
        leads.append(
            {
                "id": lead_id,
                "created_at": now,
                "updated_at": now,
                "first_name": "Sam",
                "last_name": "Okafor",
                "email": f"{prefix}.{i}@example.com",
                "phone": None,
                "preferred_contact": "email",
                "location": "boca_raton" if i % 2 else "pompano_beach",
                "zip": "33431",
                "language": lang,
                "status": "new",
                "tier_rank": assessment.tier.rank,
                "last_screened_at": now,
                **triage,
            }
        )
        screenings.append(
            {
                "id": screening_id,
                "created_at": now,
                "lead_id": lead_id,
                "language": lang,
                "answers": answers,
                "rule_set_version": rule_set.version,
                "reasons": reasons[lang],
                "rescored_from_id": None,
                **triage,
            }
        )
        deliveries.append(
            {
                "id": delivery_id,
                "created_at": now,
                "updated_at": now,
                "lead_id": lead_id,
                "screening_id": screening_id,
                "kind": kinds.KIND_BOOKING_INVITATION,
                "channel": "email",
                "queue": kinds.DEFAULT_QUEUE,
                "dedupe_key": f"{lead_id}:{screening_id}:{kinds.KIND_BOOKING_INVITATION}",
                "status": "queued",
                "attempts": 0,
                "last_error": None,
                "claimed_at": None,
                "next_attempt_at": None,
                "sent_at": None,
            }
        )
    with engine.begin() as connection:
        for table, rows in ((Lead, leads), (Screening, screenings), (Delivery, deliveries)):
            for start in range(0, len(rows), 1000):
                connection.execute(insert(table), rows[start : start + 1000])
    return [row["id"] for row in deliveries]


def run_throughput(
    db: BenchDatabase,
    redis: RedisServer,
    sink: SmtpSink,
    worker: Service,
    profiler: Profiler,
    count: int,
) -> dict[str, Any]:
    assert db.engine is not None
    db.truncate()
    sink.clear()
    ids = seed_invitations(db.engine, count, f"invite.{uuid.uuid4().hex[:8]}")
    base = load_settings()
    settings = dataclasses.replace(
        base,
        db=dataclasses.replace(base.db, url=db.url),
        broker=dataclasses.replace(base.broker, redis_url=redis.url),
    )
    celery = create_celery(settings)
    print(f"  seeded {count} queued booking invitations; publishing ...", flush=True)
    try:
        with profiler.record("throughput", worker.process.pid if worker.process else None):
            cpu_before = cpu_snapshot(worker, redis)
            started = time.time()
            for delivery_id in ids:
                celery.send_task(kinds.TASK_SEND_DELIVERY, args=[str(delivery_id)], queue=kinds.DEFAULT_QUEUE)
            published = time.time()

            def all_accepted() -> bool:
                worker.check_alive()
                return sink.count() >= count

            wait_for(all_accepted, max(120.0, count / 10), "every invitation", interval=0.02)
            cpu_after, cpu_at = cpu_snapshot(worker, redis), time.time()
        accepted_all = max(m.at for m in sink.snapshot())
        time.sleep(3.0)  # anything sent twice arrives by now
    finally:
        celery.close()

    messages = sink.snapshot()
    times = sorted(m.at for m in messages)
    received = collections.Counter(delivery_header(m.raw) for m in messages)
    expected = {str(i) for i in ids}
    with db.engine.connect() as connection:
        by_status = select(Delivery.status, func.count()).group_by(Delivery.status)
        statuses: dict[str, int] = {row[0]: row[1] for row in connection.execute(by_status)}
        by_attempts = select(Delivery.attempts, func.count()).group_by(Delivery.attempts)
        attempts: dict[int, int] = {row[0]: row[1] for row in connection.execute(by_attempts)}
    elapsed = accepted_all - started
    # The middle 80% of the run: the rate once publishing and warm-up no longer show.
    lo, hi = times[len(times) // 10], times[(len(times) * 9) // 10]
    steady = (len(times) * 8 // 10) / (hi - lo) if hi > lo else float("nan")
    return {
        "emails": count,
        "elapsed_s": round(elapsed, 3),
        "emails_per_second": round(count / elapsed, 1),
        "steady_emails_per_second": round(steady, 1),
        "publish_s": round(published - started, 3),
        "first_accepted_after_ms": round((times[0] - started) * 1000, 1),
        "delivery_status": {str(k): int(v) for k, v in statuses.items()},
        "delivery_attempts": {str(k): int(v) for k, v in attempts.items()},
        "sink_messages": len(messages),
        "sink_unique": len(received),
        "sink_duplicates": sum(n - 1 for n in received.values() if n > 1),
        "sink_missing": len(expected - set(received)),
        "sink_unexpected": len(set(received) - expected),
        "all_sent": statuses.get("sent", 0) == count and len(statuses) == 1,
        "cpu_cores_busy": cpu_used(cpu_before, cpu_after, cpu_at - started),
        "target_emails_per_second": TARGET_EMAILS_PER_SECOND,
    }


# --------------------------------------------------------------------------- main


def service_env(db_url: str, redis_url: str, smtp_port: int, data_dir: Path) -> dict[str, str]:
    """README defaults for every setting but where things are; no webhook (emails only)."""
    env = {**os.environ}
    return {
        **env,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_STARTTLS": "false",
        "INTAKE_DATA_DIR": str(data_dir),
        "STAFF_ALERT_EMAILS": ",".join(STAFF),
        "STAFF_ALERT_WEBHOOK_URL": "",
    }


def keep_logs(folder: Path, services: list[Service]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for service in services:
        if service.log_path.exists():
            shutil.copy(service.log_path, folder / service.log_path.name)


def worker_concurrency(worker: Service) -> str:
    found = re.search(r"concurrency:\s*(\d+ \(\w+\))", worker.logs())
    return found.group(1) if found else "?"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--submissions", type=int, default=200, help="emergency screens to time")
    parser.add_argument("--interval-ms", type=float, default=75.0, help="gap between submissions")
    parser.add_argument("--warmup", type=int, default=8, help="untimed emergency screens first")
    parser.add_argument("--emails", type=int, default=2000, help="booking invitations to send")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="worker processes (default: WORKER_CONCURRENCY, 4)"
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument("--profile", type=Path, default=None, help="folder for py-spy raw profiles")
    parser.add_argument("--py-spy", default=None, help="py-spy binary (default: on PATH)")
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy API and worker logs here")
    return parser.parse_args(argv)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    py_spy = (args.py_spy or shutil.which("py-spy")) if args.profile else None
    if args.profile and py_spy is None:
        raise SystemExit("--profile needs py-spy (pip install py-spy, or --py-spy PATH)")
    profiler = Profiler(py_spy, args.profile)
    results: dict[str, Any] = {}
    with contextlib.ExitStack() as cleanup:
        folder = Path(tempfile.mkdtemp(prefix="intake-bench-routing-"))
        cleanup.callback(shutil.rmtree, folder, True)
        db = BenchDatabase(args.database_url)
        cleanup.callback(db.teardown)
        db.setup()
        redis = RedisServer(folder / "redis")
        cleanup.callback(redis.stop)
        redis.start()
        sink = SmtpSink()
        sink.start()
        cleanup.callback(sink.stop)

        env = service_env(args.database_url, redis.url, sink.port, folder / "data")
        port = free_port()
        api = Service(
            "api",
            ["serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)],
            env,
            folder / "api.log",
        )
        concurrency = [f"--concurrency={args.concurrency}"] if args.concurrency else []
        worker = Service("worker", ["worker", "--beat", *concurrency], env, folder / "worker.log")
        if args.keep_logs:
            cleanup.callback(keep_logs, args.keep_logs, [api, worker])
        cleanup.callback(api.stop)
        cleanup.callback(worker.stop)
        worker.start()
        if not args.skip_latency:
            api.start()
        try:

            def worker_ready() -> bool:
                worker.check_alive()
                return "ready." in worker.logs()

            wait_for(worker_ready, 60, "the worker")
            if not args.skip_latency:
                base_url = f"http://127.0.0.1:{port}"

                def api_up() -> bool:
                    api.check_alive()
                    with contextlib.suppress(httpx.HTTPError):
                        return httpx.get(f"{base_url}/health", timeout=1).status_code == 200
                    return False

                wait_for(api_up, 60, "the API")
        except Exception:
            print(f"--- worker log\n{worker.tail()}\n--- api log\n{api.tail()}", file=sys.stderr)
            raise

        results["environment"] = {
            "postgresql": db.version(),
            "redis": redis.version(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "worker": f"intake worker --beat {' '.join(concurrency)}".strip(),
            "worker_concurrency": worker_concurrency(worker),
            "worker_pool_pids": worker.children(),
            "settings": "README defaults (LOG_LEVEL=INFO, DATABASE_POOL_SIZE=10, prefetch 1, acks late)",
        }
        print(
            f"routing bench: PostgreSQL {results['environment']['postgresql']}, Redis "
            f"{results['environment']['redis']} (own, port {redis.port}), aiosmtpd, "
            f"{os.cpu_count()} CPUs; worker concurrency {results['environment']['worker_concurrency']}",
            flush=True,
        )
        try:
            if not args.skip_latency:
                print("emergency latency:", flush=True)
                latency = run_latency(
                    f"http://127.0.0.1:{port}",
                    sink,
                    api,
                    worker,
                    profiler,
                    args.submissions,
                    args.interval_ms / 1000,
                    args.warmup,
                )
                results["latency"] = latency
                api.stop()  # the throughput phase measures the worker alone
            if not args.skip_throughput:
                print("email throughput:", flush=True)
                results["throughput"] = run_throughput(db, redis, sink, worker, profiler, args.emails)
        except Exception:
            print(
                f"--- worker log (tail)\n{worker.tail()}\n--- api log (tail)\n{api.tail()}", file=sys.stderr
            )
            raise

    ok = report(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {args.output}")
    return 0 if ok else 1


def report(results: dict[str, Any]) -> bool:
    ok = True
    latency = results.get("latency")
    if latency:
        staff = latency["staff_alert_latency_ms"]
        passed = staff["p50"] <= TARGET_P50_MS and staff["p99"] <= TARGET_P99_MS
        clean = latency["staff_alert_duplicates"] == 0 and latency["seek_care_now_missing"] == 0
        latency["pass"] = passed and clean
        ok &= latency["pass"]
        print(
            f"\n201 -> staff alert accepted  n={staff['n']}  {fmt(staff)}  "
            f"(target p50<=250 p99<=1000)  {'PASS' if passed else 'FAIL'}"
        )
        print(
            f"201 -> seek-care-now email   n={latency['seek_care_now_latency_ms']['n']}  "
            f"{fmt(latency['seek_care_now_latency_ms'])}"
        )
        print(
            f"POST round trip (to 201)     n={latency['http_201_round_trip_ms']['n']}  "
            f"{fmt(latency['http_201_round_trip_ms'])}"
        )
        print(
            f"  one every {latency['interval_ms']:.0f} ms over {latency['submit_span_s']} s; "
            f"duplicates: staff {latency['staff_alert_duplicates']}, "
            f"patient {latency['seek_care_now_duplicates']}; "
            f"patient missing {latency['seek_care_now_missing']}"
        )
    throughput = results.get("throughput")
    if throughput:
        rate = throughput["emails_per_second"]
        clean = (
            throughput["all_sent"]
            and throughput["sink_duplicates"] == 0
            and throughput["sink_missing"] == 0
            and throughput["sink_unexpected"] == 0
        )
        throughput["pass"] = rate >= TARGET_EMAILS_PER_SECOND and clean
        ok &= throughput["pass"]
        print(
            f"\nemail throughput, one worker ({results['environment']['worker_concurrency']}): "
            f"{rate:.1f} emails/s  ({throughput['emails']} in {throughput['elapsed_s']:.2f} s; "
            f"steady {throughput['steady_emails_per_second']:.1f}/s; "
            f"publish {throughput['publish_s']:.2f} s)  "
            f"target >= 200  {'PASS' if rate >= TARGET_EMAILS_PER_SECOND else 'FAIL'}"
        )
        print(
            f"  deliveries {throughput['delivery_status']}, attempts {throughput['delivery_attempts']}; "
            f"sink {throughput['sink_messages']} messages, {throughput['sink_unique']} unique, "
            f"{throughput['sink_duplicates']} duplicates, {throughput['sink_missing']} missing  "
            f"{'OK' if clean else 'NOT OK'}"
        )
        cores = ", ".join(f"{k} {v:.2f}" for k, v in throughput["cpu_cores_busy"].items())
        print(f"  CPU cores busy while sending: {cores}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
