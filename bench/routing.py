"""Routing benchmark: real API, real Celery worker, own Redis, PostgreSQL and an aiosmtpd sink.

Measures two things, the way production runs them (`intake serve --no-worker` and `intake worker
--beat` as subprocesses, README defaults for every setting except where things are):

1. **Emergency latency**: the wall time from an emergency submission to the staff alert accepted
   by the SMTP server (the sink timestamps each message with time.time() in `handle_DATA`),
   timed both from the POST (when the request was sent: what the patient's wait adds up to) and
   from its `201`, over `--submissions` screens (default 1,000) sent one every `--interval-ms`
   (open loop, so this is latency, not a queue). p50, p95, p99 and max over all of them. The
   seek-care-now email to the patient is reported beside it. The API runs as production does
   (INTAKE_ENV=production, JSON logs) with the per-client rate limit on (10 a minute): each
   submission comes from its own client address, named by `X-Forwarded-For` as behind the
   clinic's reverse proxy, which uvicorn trusts from 127.0.0.1 (FORWARDED_ALLOW_IPS=127.0.0.1).
   Targets (from the 201): p50 <= 250 ms, p99 <= 1 s.
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

    python bench/routing.py [--submissions 1000] [--emails 2000] [--concurrency N]
                            [--database-url postgresql+asyncpg://...] [--profile DIR]

(`python -m bench.routing` works too.) `--profile DIR` records the worker and its pool children
with py-spy (raw collapsed stacks). `--help` lists every flag.
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
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, func, insert, select, text

# Run as a script, this folder comes first on sys.path and bench/intake.py would shadow the
# `intake` package: drop it, and put the repository on the path for `bench.support`.
_HERE = Path(__file__).resolve().parent
if sys.path and sys.path[0] and Path(sys.path[0]).resolve() == _HERE:
    sys.path.pop(0)
if str(_HERE.parent) not in sys.path:
    sys.path.append(str(_HERE.parent))

import intake  # noqa: E402 - after the path is set
from bench.support import (  # noqa: E402
    OTHER_WORK,
    CpuMeter,
    Profiler,
    Received,
    RedisServer,
    SmtpSink,
    check_bench_database,
    children,
    create_database,
    database_exists,
    database_name,
    drop_database,
    free_port,
    postgres_backends,
    stop_process,
    summary,
    wait_for,
    wait_quiet,
)
from intake.db.base import new_id, utcnow  # noqa: E402
from intake.db.migrate import upgrade_head  # noqa: E402
from intake.db.models import Delivery, Lead, Screening  # noqa: E402
from intake.db.sync import sync_url  # noqa: E402
from intake.messaging import kinds  # noqa: E402
from intake.messaging.publishing.celery_app import create_celery  # noqa: E402
from intake.screening import load_catalog  # noqa: E402
from intake.settings import load_settings  # noqa: E402

DEFAULT_DATABASE = "intake_bench_routing"
FORWARDED_ALLOW_IPS = "127.0.0.1"
"""The reverse proxy uvicorn believes X-Forwarded-For from (uvicorn's default, said explicitly)."""
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


def summary_ms(seconds: list[float]) -> dict[str, float]:
    return summary([s * 1000 for s in seconds])


def fmt(stats: dict[str, float]) -> str:
    if not stats.get("n"):
        return "-"
    return "  ".join(f"{k} {stats[k]:7.1f}" for k in ("p50", "p95", "p99", "max")) + " ms"


# --------------------------------------------------------------------------- SMTP sink


def is_staff_alert(message: Received) -> bool:
    return set(message.rcpt_tos) == set(STAFF)


def plain_text(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    body = message.get_body(preferencelist=("plain",))
    return str(body.get_content()) if body is not None else ""


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


# --------------------------------------------------------------------------- database


class BenchDatabase:
    """The benchmark's PostgreSQL database: created if missing, migrated, dropped (or truncated)."""

    def __init__(self, url: str) -> None:
        check_bench_database(url)
        self.url = url
        self.name = database_name(url)
        self._owned = False
        self.engine: Engine | None = None

    def setup(self) -> None:
        exists = database_exists(self.url)
        if not exists:
            create_database(self.url)
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
            drop_database(self.url)


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
    profile_flags: tuple[str, ...] = ()


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
    """time.time() just before the request was sent."""
    created_at: float
    """time.time() when the 201 arrived."""


def client_address(number: int) -> str:
    """The `number`-th client's address in 10.0.0.0/8 (a header value only: nothing connects to it)."""
    n = number % (1 << 24)
    return f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}"


def submit_emergencies(
    client: httpx.Client, count: int, interval: float, prefix: str, api: Service, first_client: int = 0
) -> list[Submitted]:
    """Open loop: the i-th request leaves at start + i*interval (at once if behind).

    Each submission comes from a client address of its own (`X-Forwarded-For`), so the per-client
    rate limit (10 a minute) never answers 429 while still running on every request.
    """
    submitted: list[Submitted] = []
    start = time.monotonic()
    for i in range(count):
        delay = start + i * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        address = f"{prefix}.{i}@example.com"
        sent_at = time.time()
        response = client.post(
            "/api/intake",
            json=submission(EMERGENCY_ANSWERS, address),
            headers={"X-Forwarded-For": client_address(first_client + i)},
        )
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
            submit_emergencies(client, warmup, interval, f"warmup.{run}", system.api, first_client=count)
            wait_for(lambda: sink.count() >= 2 * warmup, 60, "the warm-up emails")
            time.sleep(0.5)
            sink.clear()
        idle = wait_quiet(system.quiet_limit, system.quiet_timeout)
        print(f"  submitting {count} emergency screens, one every {interval * 1000:.0f} ms ...", flush=True)
        with system.profiler.record("latency", worker.pid, *system.profile_flags):
            cpu_before = system.meter.read()
            submitted = submit_emergencies(client, count, interval, f"bench.{run}", system.api)

            def all_alerted() -> bool:
                worker.check_alive()
                return sum(1 for m in sink.snapshot() if is_staff_alert(m)) >= count

            wait_for(all_alerted, 120, "every staff alert", interval=0.05)
            cpu = CpuMeter.cores(cpu_before, system.meter.read())
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
    staff_from_post = [min(alerts[lead]) - s.sent_at for lead, s in by_lead.items()]
    patient_latency = [min(patients[a]) - s.created_at for a, s in by_address.items() if a in patients]
    patient_from_post = [min(patients[a]) - s.sent_at for a, s in by_address.items() if a in patients]
    return {
        "submissions": count,
        "interval_ms": interval * 1000,
        "warmup_submissions": warmup,
        "submit_span_s": round(submitted[-1].created_at - submitted[0].sent_at, 2),
        "staff_alert_latency_ms": summary_ms(staff_latency),
        "staff_alert_from_post_ms": summary_ms(staff_from_post),
        "seek_care_now_latency_ms": summary_ms(patient_latency),
        "seek_care_now_from_post_ms": summary_ms(patient_from_post),
        "http_201_round_trip_ms": summary_ms([s.created_at - s.sent_at for s in submitted]),
        "staff_alert_duplicates": sum(len(t) - 1 for t in alerts.values()),
        "seek_care_now_missing": sum(1 for a in by_address if a not in patients),
        "seek_care_now_duplicates": sum(len(t) - 1 for t in patients.values()),
        "machine_cores_busy_before": idle,
        "cpu_cores_busy": cpu,
        "disturbed": cpu[OTHER_WORK] > DISTURBED_CORES,
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
        # The row intake/leads/follow_through.py writes for a booking invitation.
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
        with system.profiler.record("throughput", worker.pid, *system.profile_flags):
            cpu_before = system.meter.read()
            started = time.time()
            publish(ids)
            published = time.time()
            wait_for(all_accepted(count), max(120.0, count / 10), "every invitation")
            cpu_after = system.meter.read()
            cpu = CpuMeter.cores(cpu_before, cpu_after)
        finished = max(m.at for m in sink.snapshot())
        # CPU per email barely depends on what else the machine runs; the rate does.
        cpu_ms = {k: round(v * 1000 / count, 2) for k, v in CpuMeter.seconds(cpu_before, cpu_after).items()}
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
    received = collections.Counter(m.delivery for m in messages)
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
        "disturbed": cpu[OTHER_WORK] > DISTURBED_CORES,
        "target_emails_per_second": TARGET_EMAILS_PER_SECOND,
    }


# --------------------------------------------------------------------------- main


def service_env(db_url: str, redis_url: str, smtp_port: int, data_dir: Path) -> dict[str, str]:
    """README defaults for every setting but where things are, in production; no webhook (emails only)."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_RATE_LIMIT")}
    return {
        **inherited,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_STARTTLS": "false",
        "INTAKE_DATA_DIR": str(data_dir),
        "PUBLIC_BASE_URL": "http://127.0.0.1",  # required off the embedded default; no link is followed here
        "STAFF_ALERT_EMAILS": ",".join(STAFF),
        "STAFF_ALERT_WEBHOOK_URL": "",
        # As production runs: JSON logs, a real secret, the per-client limit on (its default, 10 a
        # minute); each submission names its own client in X-Forwarded-For, trusted from loopback.
        "INTAKE_ENV": "production",
        "JWT_SECRET": secrets.token_urlsafe(48),
        "FORWARDED_ALLOW_IPS": FORWARDED_ALLOW_IPS,
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
        prog="python bench/routing.py",
        description="Emergency alert latency (from the POST and from the 201) and email throughput.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--submissions", "--emergencies", type=int, default=1000, help="emergency screens to time (open loop)"
    )
    parser.add_argument("--interval-ms", type=float, default=75.0, help="gap between submissions")
    parser.add_argument("--warmup", type=int, default=8, help="untimed emergency screens first")
    parser.add_argument("--emails", type=int, default=2000, help="booking invitations to send")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="worker pool size (default: WORKER_CONCURRENCY, 4)"
    )
    parser.add_argument(
        "--database-url", default=DEFAULT_DATABASE_URL, help="PostgreSQL, its name containing 'bench'; dropped after"
    )
    parser.add_argument("--skip-latency", action="store_true", help="no emergency latency phase")
    parser.add_argument("--skip-throughput", action="store_true", help="no email throughput phase")
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
            # Redis is shared plumbing (the bench's own server, but not what is measured): other work.
            meter=CpuMeter(
                {
                    "api": lambda: [api.pid],
                    "worker_main": lambda: [worker.pid],
                    "worker_pool (+ beat)": lambda: children(worker.pid) if worker.pid else [],
                    "postgres (our backends)": lambda: postgres_backends(db.name),
                    "bench (client, publisher, smtp sink)": lambda: [os.getpid()],
                }
            ),
            profiler=Profiler(args.profile, py_spy),
            profile_flags=("--idle",) if args.profile_idle else (),
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
        staff, from_post = latency["staff_alert_latency_ms"], latency["staff_alert_from_post_ms"]

        def met(stats: dict[str, float]) -> bool:
            return bool(stats.get("n")) and stats["p50"] <= TARGET_P50_MS and stats["p99"] <= TARGET_P99_MS

        fast = met(staff) and met(from_post)
        clean = latency["staff_alert_duplicates"] == 0 and latency["seek_care_now_missing"] == 0
        latency["pass"] = fast and clean
        ok &= latency["pass"]
        print(f"\nall {staff['n']} emergencies pooled (target p50 <= 250 ms, p99 <= 1000 ms):")
        print(f"POST -> staff alert accepted  {fmt(from_post)}  {'met' if met(from_post) else 'MISSED'}")
        print(f"201  -> staff alert accepted  {fmt(staff)}  {'met' if met(staff) else 'MISSED'}")
        patient, round_trip = latency["seek_care_now_latency_ms"], latency["http_201_round_trip_ms"]
        print(f"POST -> seek-care-now email   {fmt(latency['seek_care_now_from_post_ms'])}")
        print(f"201  -> seek-care-now email   {fmt(patient)}  (n={patient.get('n', 0)})")
        print(f"POST -> 201 round trip        {fmt(round_trip)}")
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
    other = used[OTHER_WORK]
    if other > DISTURBED_CORES:
        listed += f"\n  WARNING: other work used {other:.2f} cores meanwhile: this result is disturbed"
    return listed


if __name__ == "__main__":
    sys.exit(main())
