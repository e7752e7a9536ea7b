"""Routing benchmark: real API, real Celery worker, own Redis, PostgreSQL and an aiosmtpd sink.

Measures two things, the way production runs them (`intake serve --no-worker` and `intake worker
--beat` as subprocesses, README defaults for every setting except where things are):

1. **Emergency latency**: the wall time from the `201` of an emergency submission to the staff
   alert accepted by the SMTP server (the sink timestamps each message with time.time() in
   `handle_DATA`), over `--submissions` screens sent one every `--interval-ms` (open loop, so
   this is latency, not a queue). The seek-care-now email to the patient is reported beside it.
   Targets: p50 <= 250 ms, p99 <= 1 s.
2. **Email throughput** of one worker process: `--emails` booking invitations seeded as `queued`
   deliveries straight into the database, one `intake.send_delivery` task published per
   delivery, timed from the first publish until the sink has accepted all of them. Every
   delivery must then be `sent` and the sink must hold each exactly once. Target: >= 200/s.

Both phases also report how many CPU cores each part used (worker, pool, PostgreSQL backends,
Redis, this process with the SMTP sink) and how much other work the machine was doing: on a
small shared machine that decides the numbers. A phase waits (`--quiet-timeout`) for the machine
to be idle before it starts.

The database (`--database-url`, created if missing, migrated) is dropped at the end (truncated
when it is not the benchmark's own); every process started here is stopped, also on errors and
Ctrl-C. Results go to stdout and to `bench/results/routing.json`. From the repository root:

    python -m bench.routing [--submissions 200] [--emails 2000] [--concurrency N]
                            [--database-url postgresql+asyncpg://...] [--profile DIR]

(As a module: run as a script, bench/intake.py would shadow the `intake` package.)
`--profile DIR` records the worker and its pool children with py-spy (raw collapsed stacks).
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
from bench.common import (
    RedisServer,
    children,
    free_port,
    machine_busy,
    postgres_backends,
    process_cpu,
    stop_process,
    wait_for,
)
from intake.db.base import new_id, utcnow
from intake.db.migrate import upgrade_head
from intake.db.models import Delivery, Lead, Screening
from intake.db.sync import sync_url
from intake.messaging import kinds
from intake.messaging.publishing.celery_app import create_celery
from intake.screening import load_catalog
from intake.settings import load_settings

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
DISTURBED_CORES = 0.25
"""Other processes using more than this during a phase make its result suspect (flagged)."""
THROUGHPUT_WARMUP = 32
"""Untimed invitations first: each pool child builds its engine, templates and SMTP connection."""

_LEAD_LINE = re.compile(r"^Lead: ([0-9a-f-]{36})\s*$", re.MULTILINE)


# --------------------------------------------------------------------------- small helpers


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
    if not ms:
        return {"n": 0}
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
    if not stats.get("n"):
        return "-"
    return "  ".join(f"{k} {stats[k]:7.1f}" for k in ("p50", "p95", "p99", "max")) + " ms"


# --------------------------------------------------------------------------- SMTP sink


@dataclasses.dataclass(frozen=True, slots=True)
class Accepted:
    at: float
    """time.time() once DATA is complete, just before the 250 reply."""
    rcpt_tos: tuple[str, ...]
    raw: bytes


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        accepted = Accepted(time.time(), tuple(envelope.rcpt_tos), bytes(envelope.content))
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


class Service:
    """An `intake` command as a subprocess in its own session, its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = [sys.executable, "-m", "intake.cli", *args]
        self._env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                self.argv,
                env=self._env,
                cwd=REPO,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    def errors(self, limit: int = 5) -> list[str]:
        """The first error lines (a task that raised, a traceback's last line)."""
        found = [line for line in self.logs().splitlines() if "[error" in line or "raised unexpected" in line]
        return found[:limit]

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


class Profiler:
    """Optional: py-spy recording a worker and its pool children (on-CPU samples) during a phase."""

    def __init__(self, binary: str | None, folder: Path | None, idle: bool) -> None:
        self._binary = binary
        self._folder = folder
        self._idle = idle

    @contextlib.contextmanager
    def record(self, name: str, pid: int | None) -> Iterator[None]:
        if self._binary is None or self._folder is None or pid is None:
            yield
            return
        self._folder.mkdir(parents=True, exist_ok=True)
        out = self._folder / f"{name}.txt"
        argv = [self._binary, "record", "--pid", str(pid), "--subprocesses", "--rate", "100"]
        argv += ["--format", "raw", "--output", str(out), "--nonblocking"]
        if self._idle:
            argv.append("--idle")
        with (self._folder / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        time.sleep(1.0)  # py-spy attaches
        try:
            yield
        finally:
            process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            print(f"  profile: {out}", flush=True)


# --------------------------------------------------------------------------- CPU accounting


class CpuMeter:
    """CPU seconds of each part of the system under test, and of the machine as a whole."""

    def __init__(self, database: str, api: Service, worker: Service, redis: RedisServer) -> None:
        self._database = database
        self._api = api
        self._worker = worker
        self._redis = redis

    def snapshot(self) -> dict[str, float]:
        worker = self._worker.pid
        redis = self._redis.process.pid if self._redis.process is not None else None
        return {
            "api": process_cpu(self._api.pid),
            "worker_main": process_cpu(worker),
            "worker_pool (+ beat)": sum(process_cpu(c) for c in children(worker)) if worker else 0.0,
            "postgres (our backends)": sum(process_cpu(p) for p in postgres_backends(self._database)),
            "redis (ours)": process_cpu(redis),
            "bench (client, publisher, smtp sink)": process_cpu(os.getpid()),
            "machine": machine_busy(),
        }

    @staticmethod
    def used(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
        """Cores each part kept busy over `seconds`; `other` is what processes not ours used."""
        cores = {name: round((after[name] - before[name]) / seconds, 2) for name in before}
        ours = sum(v for k, v in cores.items() if k != "machine")
        cores["other (not this benchmark)"] = round(max(0.0, cores["machine"] - ours), 2)
        return cores


def wait_quiet(limit: float, timeout: float) -> float:
    """Wait (up to `timeout` s) until the machine uses at most `limit` cores; returns the last reading."""
    deadline = time.monotonic() + timeout
    announced = False
    while True:
        before = machine_busy()
        time.sleep(2.0)
        busy = round((machine_busy() - before) / 2.0, 2)
        if busy <= limit:
            return busy
        if time.monotonic() > deadline:
            print(f"  WARNING: the machine stays busy ({busy:.2f} cores) with other work", flush=True)
            return busy
        if not announced:
            print(f"  waiting for the machine to be quiet ({busy:.2f} cores busy) ...", flush=True)
            announced = True


# --------------------------------------------------------------------------- database


class BenchDatabase:
    """The benchmark's PostgreSQL database: created if missing, migrated, dropped (or truncated)."""

    def __init__(self, url: str) -> None:
        if not url.startswith("postgresql"):
            raise SystemExit("--database-url must be a PostgreSQL URL (postgresql+asyncpg://...)")
        self.url = url
        parsed = make_url(sync_url(url))
        self.name = parsed.database or ""
        self._admin_url = parsed.set(database="postgres")
        self._owned = False
        self.engine: Engine | None = None

    def _admin(self, sql: str, **params: str) -> list[Any]:
        admin = create_engine(self._admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                result = connection.execute(text(sql), params)
                return list(result.all()) if result.returns_rows else []
        finally:
            admin.dispose()

    def setup(self) -> None:
        exists = self._admin("SELECT 1 FROM pg_database WHERE datname = :name", name=self.name)
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
            return str(connection.execute(text("SHOW server_version")).scalar_one()).split()[0]

    def truncate(self) -> None:
        """Empty every table but Alembic's (the schema grows: ask the database, not a list)."""
        assert self.engine is not None
        with self.engine.begin() as connection:
            tables = connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")
            ).scalars()
            names = ", ".join(f'"{name}"' for name in tables)
            if names:
                connection.execute(text(f"TRUNCATE {names} CASCADE"))

    def teardown(self) -> None:
        if self.engine is not None:
            if not self._owned:
                with contextlib.suppress(Exception):
                    self.truncate()
            self.engine.dispose()
            self.engine = None
        if self._owned:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


# --------------------------------------------------------------------------- the system under test


@dataclasses.dataclass
class System:
    db: BenchDatabase
    redis: RedisServer
    sink: SmtpSink
    api: Service
    api_url: str
    worker: Service
    meter: CpuMeter
    profiler: Profiler
    quiet_limit: float
    quiet_timeout: float


# --------------------------------------------------------------------------- phase 1: latency


def submission(answers: dict[str, Any], address: str, language: str = "en") -> dict[str, Any]:
    # No phone: a shared phone would make every submission the same person, one lead.
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


@dataclasses.dataclass(frozen=True, slots=True)
class Submitted:
    lead_id: str
    address: str
    sent_at: float
    created_at: float
    """time.time() when the 201 arrived."""


def submit_emergencies(client: httpx.Client, count: int, interval: float, prefix: str, api: Service) -> list[Submitted]:
    """Open loop: the i-th request leaves at start + i*interval (at once if behind)."""
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


def run_latency(system: System, count: int, interval: float, warmup: int) -> dict[str, Any]:
    sink, worker = system.sink, system.worker
    run = uuid.uuid4().hex[:8]
    with httpx.Client(base_url=system.api_url, timeout=30) as client:
        if warmup:
            # Each pool child builds its engine, templates and SMTP connection on its first task.
            submit_emergencies(client, warmup, interval, f"warmup.{run}", system.api)
            wait_for(lambda: sink.count() >= 2 * warmup, 60, "the warm-up emails")
            time.sleep(0.5)
            sink.clear()
        idle = wait_quiet(system.quiet_limit, system.quiet_timeout)
        print(f"  submitting {count} emergency screens, one every {interval * 1000:.0f} ms ...", flush=True)
        with system.profiler.record("latency", worker.pid):
            cpu_before, cpu_at = system.meter.snapshot(), time.time()
            submitted = submit_emergencies(client, count, interval, f"bench.{run}", system.api)

            def all_alerted() -> bool:
                worker.check_alive()
                return sum(1 for m in sink.snapshot() if is_staff_alert(m)) >= count

            wait_for(all_alerted, 120, "every staff alert", interval=0.05)
            cpu = CpuMeter.used(cpu_before, system.meter.snapshot(), time.time() - cpu_at)
        time.sleep(2.0)  # anything sent twice has arrived by now

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
    unknown = set(alerts) - set(by_lead)
    if missing or unknown:
        raise RuntimeError(f"staff alerts: {len(missing)} missing, {len(unknown)} unknown")
    staff_latency = [min(alerts[lead]) - s.created_at for lead, s in by_lead.items()]
    patient_latency = [min(patients[a]) - s.created_at for a, s in by_address.items() if a in patients]
    return {
        "submissions": count,
        "interval_ms": interval * 1000,
        "warmup_submissions": warmup,
        "submit_span_s": round(submitted[-1].created_at - submitted[0].sent_at, 2),
        "staff_alert_latency_ms": summary_ms(staff_latency),
        "seek_care_now_latency_ms": summary_ms(patient_latency),
        "http_201_round_trip_ms": summary_ms([s.created_at - s.sent_at for s in submitted]),
        "staff_alert_duplicates": sum(len(t) - 1 for t in alerts.values()),
        "seek_care_now_missing": sum(1 for a in by_address if a not in patients),
        "seek_care_now_duplicates": sum(len(t) - 1 for t in patients.values()),
        "machine_cores_busy_before": idle,
        "cpu_cores_busy": cpu,
        "disturbed": cpu["other (not this benchmark)"] > DISTURBED_CORES,
        "targets_ms": {"p50": TARGET_P50_MS, "p99": TARGET_P99_MS},
    }


# --------------------------------------------------------------------------- phase 2: throughput


def seed_invitations(engine: Engine, count: int, prefix: str) -> list[uuid.UUID]:
    """`count` book_consultation leads, each with its screening and a queued booking invitation."""
    catalog = load_catalog()
    rule_set = catalog.get(RULE_SET_VERSION)
    answers, errors = catalog.questionnaire.validate(ROUTINE_ANSWERS)
    if errors:
        raise RuntimeError(f"the routine answers do not validate: {errors}")
    assessment = rule_set.assess(answers)
    if assessment.route.value != "book_consultation":
        raise RuntimeError(f"the routine answers route to {assessment.route.value}")
    triage = {"tier": assessment.tier.value, "route": assessment.route.value, "score": assessment.score}
    reasons = {
        lang: [{"code": r.code, "tier": r.tier.value, "text": r.text} for r in rule_set.reasons(assessment, lang)]
        for lang in ("en", "es")
    }
    now = utcnow()
    leads: list[dict[str, Any]] = []
    screenings: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    for i in range(count):
        lang = "es" if i % 4 == 3 else "en"
        lead_id, screening_id = new_id(), new_id()
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
        # The row insert_deliveries (intake/messaging/routing.py) writes for a booking invitation.
        deliveries.append(
            {
                "id": new_id(),
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


def run_throughput(system: System, count: int) -> dict[str, Any]:
    db, sink, worker = system.db, system.sink, system.worker
    assert db.engine is not None
    db.truncate()
    sink.clear()
    run = uuid.uuid4().hex[:8]
    warm = seed_invitations(db.engine, THROUGHPUT_WARMUP, f"warm.{run}")
    base = load_settings()
    settings = dataclasses.replace(
        base,
        db=dataclasses.replace(base.db, url=db.url),
        broker=dataclasses.replace(base.broker, redis_url=system.redis.url),
    )
    celery = create_celery(settings)

    def publish(delivery_ids: list[uuid.UUID]) -> None:
        for delivery_id in delivery_ids:
            celery.send_task(kinds.TASK_SEND_DELIVERY, args=[str(delivery_id)], queue=kinds.DEFAULT_QUEUE)

    def all_accepted(expected: int) -> Callable[[], bool]:
        def check() -> bool:
            worker.check_alive()
            return sink.count() >= expected

        return check

    try:
        publish(warm)
        wait_for(all_accepted(len(warm)), 60, "the warm-up invitations")
        time.sleep(0.5)
        sink.clear()
        idle = wait_quiet(system.quiet_limit, system.quiet_timeout)
        # Seeded only now: beat's sweep publishes a queued delivery left alone for a minute.
        ids = seed_invitations(db.engine, count, f"invite.{run}")
        print(f"  seeded {count} queued booking invitations; publishing ...", flush=True)
        with system.profiler.record("throughput", worker.pid):
            cpu_before = system.meter.snapshot()
            started = time.time()
            publish(ids)
            published = time.time()
            wait_for(all_accepted(count), max(120.0, count / 10), "every invitation")
            cpu_after = system.meter.snapshot()
            cpu = CpuMeter.used(cpu_before, cpu_after, time.time() - started)
        finished = max(m.at for m in sink.snapshot())
        # CPU per email barely depends on what else the machine runs; the rate does.
        cpu_ms = {k: round((cpu_after[k] - cpu_before[k]) * 1000 / count, 2) for k in cpu_before if k != "machine"}
        cpu_ms = {k: v for k, v in cpu_ms.items() if v}
        cpu_ms["total (ours)"] = round(sum(cpu_ms.values()), 2)
        time.sleep(3.0)  # anything sent twice has arrived by now
    finally:
        celery.close()

    messages = sink.snapshot()
    early = sum(1 for m in messages if m.at < started)
    if early:
        raise RuntimeError(f"{early} invitations were sent before the first publish (the sweep?)")
    times = sorted(m.at for m in messages)
    received = collections.Counter(delivery_header(m.raw) for m in messages)
    expected = {str(i) for i in ids}
    with db.engine.connect() as connection:
        by_status = select(Delivery.status, func.count()).where(Delivery.id.in_(ids)).group_by(Delivery.status)
        statuses: dict[str, int] = {row[0]: row[1] for row in connection.execute(by_status)}
        by_attempts = select(Delivery.attempts, func.count()).where(Delivery.id.in_(ids)).group_by(Delivery.attempts)
        attempts: dict[int, int] = {row[0]: row[1] for row in connection.execute(by_attempts)}
    elapsed = finished - started
    # The middle 80% of the sends: the rate once publishing and the first tasks no longer show.
    low, high = times[len(times) // 10], times[(len(times) * 9) // 10]
    steady = (len(times) * 8 // 10) / (high - low) if high > low else float("nan")
    return {
        "emails": count,
        "warmup_emails": len(warm),
        "elapsed_s": round(elapsed, 3),
        "emails_per_second": round(count / elapsed, 1),
        "steady_emails_per_second": round(steady, 1),
        "publish_s": round(published - started, 3),
        "first_accepted_after_ms": round((times[0] - started) * 1000, 1),
        "delivery_status": {str(k): int(v) for k, v in statuses.items()},
        "delivery_attempts": {str(k): int(v) for k, v in attempts.items()},
        "all_sent": statuses.get("sent", 0) == count and len(statuses) == 1,
        "sink_messages": len(messages),
        "sink_unique": len(received),
        "sink_duplicates": sum(n - 1 for n in received.values()),
        "sink_missing": len(expected - set(received)),
        "sink_unexpected": len(set(received) - expected),
        "machine_cores_busy_before": idle,
        "cpu_cores_busy": cpu,
        "cpu_ms_per_email": cpu_ms,
        "disturbed": cpu["other (not this benchmark)"] > DISTURBED_CORES,
        "target_emails_per_second": TARGET_EMAILS_PER_SECOND,
    }


# --------------------------------------------------------------------------- main


def service_env(db_url: str, redis_url: str, smtp_port: int, data_dir: Path) -> dict[str, str]:
    """README defaults for every setting but where things are; no webhook (emails only); no rate limit."""
    return {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_STARTTLS": "false",
        "INTAKE_DATA_DIR": str(data_dir),
        "STAFF_ALERT_EMAILS": ",".join(STAFF),
        "STAFF_ALERT_WEBHOOK_URL": "",
        # Every submission comes from this one address: the per-client limit (10 a minute) would 429.
        "INTAKE_RATE_LIMIT_PER_MINUTE": "0",
    }


def worker_concurrency(worker: Service) -> str:
    found = re.search(r"concurrency:\s*(\d+ \(\w+\))", worker.logs())
    return found.group(1) if found else "?"


def keep_logs(folder: Path, services: list[Service]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for service in services:
        if service.log_path.exists():
            shutil.copy(service.log_path, folder / service.log_path.name)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.routing", description="Emergency alert latency and email throughput."
    )
    parser.add_argument("--submissions", type=int, default=200, help="emergency screens to time")
    parser.add_argument("--interval-ms", type=float, default=75.0, help="gap between submissions")
    parser.add_argument("--warmup", type=int, default=8, help="untimed emergency screens first")
    parser.add_argument("--emails", type=int, default=2000, help="booking invitations to send")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="worker pool size (default: WORKER_CONCURRENCY, 4)"
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="PostgreSQL; dropped after")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument("--quiet-limit", type=float, default=0.3, help="cores other work may use before a phase starts")
    parser.add_argument("--quiet-timeout", type=float, default=300.0, help="seconds to wait for that")
    parser.add_argument("--profile", type=Path, default=None, help="folder for py-spy profiles of the worker")
    parser.add_argument("--profile-idle", action="store_true", help="py-spy --idle (waits too)")
    parser.add_argument("--py-spy", default=None, help="py-spy binary (default: on PATH)")
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy the API and worker logs here")
    return parser.parse_args(argv)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    py_spy = (args.py_spy or shutil.which("py-spy")) if args.profile else None
    if args.profile and py_spy is None:
        raise SystemExit("--profile needs py-spy (pip install py-spy, or --py-spy PATH)")
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
            "api", ["serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)], env, folder / "api.log"
        )
        concurrency = [f"--concurrency={args.concurrency}"] if args.concurrency else []
        worker = Service("worker", ["worker", "--beat", *concurrency], env, folder / "worker.log")
        if args.keep_logs:
            cleanup.callback(keep_logs, args.keep_logs, [api, worker])
        cleanup.callback(api.stop)
        cleanup.callback(worker.stop)
        system = System(
            db=db,
            redis=redis,
            sink=sink,
            api=api,
            api_url=f"http://127.0.0.1:{port}",
            worker=worker,
            meter=CpuMeter(db.name, api, worker, redis),
            profiler=Profiler(py_spy, args.profile, args.profile_idle),
            quiet_limit=args.quiet_limit,
            quiet_timeout=args.quiet_timeout,
        )
        try:
            worker.start()
            if not args.skip_latency:
                api.start()

            def worker_ready() -> bool:
                worker.check_alive()
                return "ready." in worker.logs()

            def api_up() -> bool:
                api.check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    return httpx.get(f"{system.api_url}/health", timeout=1).status_code == 200
                return False

            wait_for(worker_ready, 60, "the worker")
            if not args.skip_latency:
                wait_for(api_up, 60, "the API")

            results["environment"] = {
                "postgresql": db.version(),
                "redis": redis.version(),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "api": " ".join(["intake", *api.argv[3:]]),
                "worker": " ".join(["intake", *worker.argv[3:]]),
                "worker_concurrency": worker_concurrency(worker),
                "settings": "README defaults (LOG_LEVEL=INFO, console logs, DATABASE_POOL_SIZE=10); "
                "Celery: prefetch multiplier 1, acks late (workers/celery_app.py)",
            }
            print(
                f"routing bench: PostgreSQL {results['environment']['postgresql']}, Redis "
                f"{results['environment']['redis']} (own, port {redis.port}), aiosmtpd in-process, "
                f"{os.cpu_count()} CPUs; `{results['environment']['worker']}`, concurrency "
                f"{results['environment']['worker_concurrency']}",
                flush=True,
            )
            if not args.skip_latency:
                print("emergency latency:", flush=True)
                results["latency"] = run_latency(system, args.submissions, args.interval_ms / 1000, args.warmup)
                api.stop()  # the throughput phase measures the worker alone
            if not args.skip_throughput:
                print("email throughput:", flush=True)
                results["throughput"] = run_throughput(system, args.emails)
        except BaseException:
            print(f"--- worker log (tail)\n{worker.tail()}\n--- api log (tail)\n{api.tail()}", file=sys.stderr)
            errors = worker.errors()
            if errors:
                print("--- first errors in the worker log\n" + "\n".join(errors), file=sys.stderr)
            raise

    ok = report(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {args.output}")
    return 0 if ok else 1


def report(results: dict[str, Any]) -> bool:
    """Print the compact result; marks each phase `pass` in `results`."""
    ok = True
    latency = results.get("latency")
    if latency:
        staff = latency["staff_alert_latency_ms"]
        fast = staff["p50"] <= TARGET_P50_MS and staff["p99"] <= TARGET_P99_MS
        clean = latency["staff_alert_duplicates"] == 0 and latency["seek_care_now_missing"] == 0
        latency["pass"] = fast and clean
        ok &= latency["pass"]
        print(
            f"\n201 -> staff alert accepted  n={staff['n']}  {fmt(staff)}  "
            f"(target p50 <= 250, p99 <= 1000)  {'PASS' if fast else 'FAIL'}"
        )
        patient, round_trip = latency["seek_care_now_latency_ms"], latency["http_201_round_trip_ms"]
        print(f"201 -> seek-care-now email   n={patient['n']}  {fmt(patient)}")
        print(f"POST -> 201 round trip       n={round_trip['n']}  {fmt(round_trip)}")
        print(
            f"  one every {latency['interval_ms']:.0f} ms over {latency['submit_span_s']} s; duplicates: "
            f"staff {latency['staff_alert_duplicates']}, patient {latency['seek_care_now_duplicates']}; "
            f"patient emails missing {latency['seek_care_now_missing']}"
        )
        print(f"  CPU cores: {cores(latency['cpu_cores_busy'])}")
    throughput = results.get("throughput")
    if throughput:
        rate = throughput["emails_per_second"]
        fast = rate >= TARGET_EMAILS_PER_SECOND
        clean = throughput["all_sent"] and not any(
            throughput[k] for k in ("sink_duplicates", "sink_missing", "sink_unexpected")
        )
        throughput["pass"] = fast and clean
        ok &= throughput["pass"]
        print(
            f"\nemail throughput, one worker ({results['environment']['worker_concurrency']}): "
            f"{rate:.1f} emails/s  ({throughput['emails']} in {throughput['elapsed_s']:.2f} s, "
            f"middle 80% {throughput['steady_emails_per_second']:.1f}/s, publishing took "
            f"{throughput['publish_s']:.2f} s)  target >= 200  {'PASS' if fast else 'FAIL'}"
        )
        print(
            f"  deliveries {throughput['delivery_status']}, attempts {throughput['delivery_attempts']}; "
            f"sink {throughput['sink_messages']} messages, {throughput['sink_unique']} unique, "
            f"{throughput['sink_duplicates']} duplicates, {throughput['sink_missing']} missing  "
            f"{'OK' if clean else 'NOT OK'}"
        )
        print(f"  CPU cores: {cores(throughput['cpu_cores_busy'])}")
        per_email = ", ".join(f"{k} {v:.2f}" for k, v in throughput["cpu_ms_per_email"].items())
        print(f"  CPU ms per email: {per_email}")
    return ok


def cores(used: dict[str, float]) -> str:
    listed = ", ".join(f"{name} {value:.2f}" for name, value in used.items() if value or name == "machine")
    other = used["other (not this benchmark)"]
    if other > DISTURBED_CORES:
        listed += f"\n  WARNING: other work used {other:.2f} cores meanwhile: this result is disturbed"
    return listed


if __name__ == "__main__":
    sys.exit(main())
