"""Follow-up throughput: 100,000 due follow-ups sent by one `intake worker --beat`, each exactly once.

What it does, from the repository root (`python bench/followups.py`, or `python -m bench.followups`):

1. **Seed** a fresh PostgreSQL database (`--database-url`, default `intake_bench_followups`; its name
   must contain "bench": it is dropped, created and migrated) by binary COPY (asyncpg), not the ORM:
   `--count` leads (unique emails, about 35 % Spanish, status `new`, a routine screen routed to
   `book_consultation`), each with its screening, a consent row (`email_followup = true`) and one
   pending `follow_ups` row (`booking_reminder_1` of `book_consultation`) due in the last hour; then
   VACUUM ANALYZE.
2. **Run** the production shape: a redis-server of its own on a free port (never the shared one), an
   aiosmtpd sink in this process on a thread (it counts messages and keeps each one's
   `X-Intake-Delivery` header and recipients), and `intake worker --beat --concurrency N` as a
   subprocess (prefork, beat inside). Every setting is the README default (production JSON logs
   at INFO) except the ones printed under "settings": where things are, and `SENDING_WINDOW=00:00-24:00`
   (a benchmark must not depend on the hour); `--claim-seconds` sets `FOLLOW_UP_CLAIM_SECONDS`.
3. **Time** from the worker's start until the sink holds `--count` messages (`--timeout`, default
   15 min), then let it run `--settle` seconds more so that a late duplicate would be seen.
4. **Check** in the database that every follow-up is `claimed` and every delivery `sent`, and in the
   sink that no `X-Intake-Delivery` and no recipient came twice, and that every message is one of
   the seeded deliveries.

Printed: total seconds, emails/s (overall and in steady state), duplicates, the settings used, the
timeline, what the worker logged (claims, sweep re-publications, retries), the Redis queue depth,
and how many cores each party used (worker, PostgreSQL backends, Redis, this process with the sink,
and the rest of the machine: on a small shared machine that decides the numbers). Written to
bench/results/followups.json. Exit status 1 when a check fails or the run times out (`--check`: also
when the 10-minute target is missed).

The claim interval: one beat run claims at most 20 batches of FOLLOW_UP_CLAIM_BATCH (500), and stops
early while 2,000 follow-up emails already wait to be sent. With the README default of 10 s, beat
claims as fast as one worker sends. With `--claim-seconds 60` (the default before), 100,000 due rows
need ten runs, the last at about 600 s: the target is missed by construction, however fast the
sending is.

    python bench/followups.py                          # 10 to 15 minutes on 2 cores
    python bench/followups.py --count 5000 --timeout 120
    python bench/followups.py --claim-seconds 60       # the claim interval before it became 10 s
    python bench/followups.py --profile /tmp/prof      # py-spy the worker and its pool children

Every process started here (worker, redis-server, py-spy) is stopped at the end, also on errors and
Ctrl-C; the database is dropped unless `--keep-db`. To benchmark another checkout of the code, put it
first on PYTHONPATH and run this file as a script: the worker runs outside the repository, so it
imports `intake` and `workers` from there (the output names the paths used).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import asyncpg  # type: ignore[import-untyped]

# Run as a script, this folder comes first on sys.path and bench/intake.py would shadow the
# `intake` package: drop it (the package is imported lazily, inside the functions below).
_HERE = Path(__file__).resolve().parent
if sys.path and sys.path[0] and Path(sys.path[0]).resolve() == _HERE:
    sys.path.pop(0)
if str(_HERE.parent) not in sys.path:
    sys.path.append(str(_HERE.parent))  # the repository, for `bench.support`; PYTHONPATH still comes first

from bench.support import (  # noqa: E402 - after the path is set
    OTHER_WORK,
    CpuMeter,
    Profiler,
    RedisServer,
    SmtpSink,
    asyncpg_dsn,
    database_name,
    descendants,
    drop_database,
    postgres_backends,
    recreate_database,
    stop_process,
    wait_quiet,
)

RESULTS = _HERE / "results" / "followups.json"
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/intake_bench_followups"
TARGET_SECONDS = 600.0
ALWAYS = "00:00-24:00"
JWT_SECRET = "bench-followups-secret-0123456789abcdef"
SEQUENCE = "book_consultation"
KIND = "booking_reminder_1"
SPANISH_SHARE = 0.35
ROUTINE_ANSWERS: dict[str, Any] = {
    "pain_area": ["lower_back"],
    "pain_now": 4,
    "duration": "under_24h",
    "injury": "none",
    "improving": "better",
    "age": 35,
}
FIRST_NAMES = {
    "en": ("James", "Linda", "Michael", "Susan", "David", "Karen", "Robert", "Emily", "John", "Sarah"),
    "es": ("Lucía", "José", "Carmen", "Sofía", "Alejandro", "María", "Javier", "Ana", "Diego", "Rosa"),
}
LAST_NAMES = {
    "en": ("Smith", "Johnson", "Brown", "Miller", "Davis", "Wilson", "Taylor", "Clark", "Walker", "Young"),
    "es": ("García", "Rodríguez", "Martínez", "López", "González", "Pérez", "Sánchez", "Ramírez", "Ruiz", "Díaz"),
}
DISTURBED_CORES = 0.25
"""Other processes using more than this many cores during the run make its result suspect (flagged)."""


# --------------------------------------------------------------------------- small helpers


class Interrupted(Exception):
    """SIGINT, SIGTERM or SIGHUP: unwind through the `finally` blocks that stop what we started."""


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    # Once: a second Ctrl-C must not cut the clean-up short (it is bounded: about 40 s at most).
    for other in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(other, signal.SIG_IGN)
    raise Interrupted(f"signal {signal.Signals(signum).name}")


def settings_variables(repo: Path) -> set[str]:
    """Every environment variable intake/settings.py reads: none may leak in from our own environment."""
    source = (repo / "intake" / "settings.py").read_text()
    return set(re.findall(r"_env\w*\(\s*\"([A-Z_0-9]+)\"", source))


# --------------------------------------------------------------------------- processes


class WorkerProcess:
    """`intake worker --beat --concurrency N` in its own session, run outside the repository, logging to a file."""

    def __init__(self, concurrency: int, env: dict[str, str], folder: Path) -> None:
        self.argv = [sys.executable, "-m", "intake.cli", "worker", "--beat", f"--concurrency={concurrency}"]
        self._env = env
        self._folder = folder
        self.log_path = folder / "worker.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                self.argv,
                env=self._env,
                cwd=self._folder,  # not the repository: `-m` would put it ahead of PYTHONPATH
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"the worker exited with {self.process.returncode}:\n{self.tail()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to the main process only (Celery's warm shutdown lets running tasks finish), then the group."""
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
            stop_process(process, timeout=10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # whatever is left of its group (a pool child that hung)
        self.process = None


# --------------------------------------------------------------------------- database


@dataclass
class Seeded:
    emails: set[str]
    spanish: int
    seconds: float


def seed_rows(count: int, seed: int, now: dt.datetime) -> tuple[dict[str, list[tuple[Any, ...]]], set[str], int]:
    """The rows of leads, screenings, consents and follow_ups, as COPY records (column order of COLUMNS)."""
    from intake.db.base import new_id
    from intake.db.models.lead import urgency_of
    from intake.leads.contact import search_text
    from intake.screening import load_catalog
    from intake.settings import load_settings

    rule_set = load_catalog().latest
    assessment = rule_set.assess(ROUTINE_ANSWERS)
    if assessment.route.value != SEQUENCE:
        raise RuntimeError(f"the routine answers route to {assessment.route.value}, not {SEQUENCE}")
    tier, tier_rank, route, score = (
        assessment.tier.value,
        assessment.tier.rank,
        assessment.route.value,
        assessment.score,
    )
    urgency = urgency_of(tier_rank, score)
    answers = json.dumps(ROUTINE_ANSWERS)
    reasons = {
        lang: json.dumps(
            [{"code": r.code, "tier": r.tier.value, "text": r.text} for r in rule_set.reasons(assessment, lang)]
        )
        for lang in ("en", "es")
    }
    privacy_version = load_settings().clinic.privacy_notice_version
    rng = random.Random(seed)
    rows: dict[str, list[tuple[Any, ...]]] = {"leads": [], "screenings": [], "consents": [], "follow_ups": []}
    emails: set[str] = set()
    spanish = 0
    for i in range(count):
        lang = "es" if rng.random() < SPANISH_SHARE else "en"
        spanish += lang == "es"
        first, last = rng.choice(FIRST_NAMES[lang]), rng.choice(LAST_NAMES[lang])
        email = f"{_ascii(first)}.{_ascii(last)}.{i}@bench.example".lower()
        emails.add(email)
        phone = f"+1561{2_000_000 + i:07d}"
        # Routed a day ago (a minute to an hour more), so the first reminder (+1d) fell due in the last hour.
        due_at = now - dt.timedelta(seconds=rng.uniform(60, 3600))
        created = due_at - dt.timedelta(days=1)
        lead_id, screening_id = new_id(), new_id()
        location = "boca_raton" if rng.random() < 0.6 else "pompano_beach"
        rows["leads"].append(
            (
                lead_id,
                created,
                created,
                first,
                last,
                email,
                phone,
                "email",
                location,
                lang,
                "new",
                tier,
                tier_rank,
                route,
                score,
                created,
                urgency,
                due_at,
                search_text(first, last, email, phone),
            )
        )
        rows["screenings"].append(
            (screening_id, created, lead_id, lang, answers, rule_set.version, tier, route, score, reasons[lang])
        )
        rows["consents"].append((new_id(), created, lead_id, screening_id, privacy_version, created, True, False))
        rows["follow_ups"].append((new_id(), created, lead_id, SEQUENCE, KIND, due_at, "pending"))
    return rows, emails, spanish


COLUMNS = {
    "leads": (
        "id",
        "created_at",
        "updated_at",
        "first_name",
        "last_name",
        "email",
        "phone",
        "preferred_contact",
        "location",
        "language",
        "status",
        "tier",
        "tier_rank",
        "route",
        "score",
        "last_screened_at",
        "urgency",
        "next_follow_up_at",
        "search_text",
    ),
    "screenings": (
        "id",
        "created_at",
        "lead_id",
        "language",
        "answers",
        "rule_set_version",
        "tier",
        "route",
        "score",
        "reasons",
    ),
    "consents": (
        "id",
        "created_at",
        "lead_id",
        "screening_id",
        "privacy_notice_version",
        "privacy_accepted_at",
        "email_followup",
        "sms",
    ),
    "follow_ups": ("id", "created_at", "lead_id", "sequence", "kind", "due_at", "status"),
}


def _ascii(name: str) -> str:
    return name.translate(str.maketrans("áéíóúñÁÉÍÓÚÑ", "aeiounAEIOUN"))


def seed(url: str, count: int, rng_seed: int) -> Seeded:
    started = time.monotonic()
    rows, emails, spanish = seed_rows(count, rng_seed, dt.datetime.now(dt.UTC))

    async def run() -> None:
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            async with connection.transaction():
                for table in ("leads", "screenings", "consents", "follow_ups"):
                    await connection.copy_records_to_table(table, records=rows[table], columns=COLUMNS[table])
            await connection.execute("VACUUM ANALYZE")
        finally:
            await connection.close()

    asyncio.run(run())
    return Seeded(emails, spanish, time.monotonic() - started)


async def _database_state(url: str) -> dict[str, Any]:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        follow_ups = dict(await connection.fetch("SELECT status, count(*) FROM follow_ups GROUP BY status"))
        deliveries = dict(await connection.fetch("SELECT status, count(*) FROM deliveries GROUP BY status"))
        attempts = dict(await connection.fetch("SELECT attempts, count(*) FROM deliveries GROUP BY attempts"))
        sent = await connection.fetchrow(
            "SELECT min(sent_at) AS first, max(sent_at) AS last, count(DISTINCT lead_id) AS leads FROM deliveries"
        )
        ids = {str(r["id"]) for r in await connection.fetch("SELECT id FROM deliveries WHERE status = 'sent'")}
        pending_next = await connection.fetchval("SELECT count(*) FROM leads WHERE next_follow_up_at IS NOT NULL")
        kinds = dict(await connection.fetch("SELECT kind, count(*) FROM deliveries GROUP BY kind"))
    finally:
        await connection.close()
    spread = (sent["last"] - sent["first"]).total_seconds() if sent["first"] and sent["last"] else None
    return {
        "follow_ups": {str(k): int(v) for k, v in follow_ups.items()},
        "deliveries": {str(k): int(v) for k, v in deliveries.items()},
        "delivery_kinds": {str(k): int(v) for k, v in kinds.items()},
        "attempts": {str(k): int(v) for k, v in sorted(attempts.items())},
        "delivery_leads": int(sent["leads"]),
        "sent_at_spread_seconds": round(spread, 1) if spread is not None else None,
        "leads_with_next_follow_up_at": int(pending_next),
        "sent_ids": ids,
    }


def database_state(url: str) -> dict[str, Any]:
    return asyncio.run(_database_state(url))


# --------------------------------------------------------------------------- the worker's log


def log_summary(text: str, started_at: float) -> dict[str, Any]:
    """What the worker logged (production JSON lines; a line that is not JSON is kept if it looks like an error).

    `started_at` is the worker's start (time.time()): claim batches are listed as seconds after it.
    """
    events: Counter[str] = Counter()
    levels: Counter[str] = Counter()
    claims: list[tuple[float, int]] = []
    republished: list[tuple[float, int]] = []
    errors: list[str] = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            if ("Traceback" in line or "Error" in line) and len(errors) < 10:
                errors.append(line[:300])
            continue
        if not isinstance(record, dict):
            continue
        event = str(record.get("event", ""))
        level = str(record.get("level", ""))
        levels[level] += 1
        events[event if len(event) < 60 else event[:60] + "..."] += 1
        at = _seconds_after(record.get("timestamp"), started_at)
        if event == "followups.claimed":
            claims.append((at, int(record.get("claimed", 0))))
        elif event == "sweep.republished":
            republished.append((at, int(record.get("found", 0))))
        if level in {"error", "critical"} and len(errors) < 10:
            errors.append(line[:300])
    return {
        "claimed": sum(n for _, n in claims),
        "claim_batches": len(claims),
        "claim_batch_times_s": [round(at, 1) for at, _ in claims],
        "sweep_republished": sum(n for _, n in republished),
        "sweep_republications": [(round(at, 1), n) for at, n in republished],
        "events": dict(events.most_common(15)),
        "levels": dict(levels),
        "errors": errors,
    }


def _seconds_after(stamp: object, started_at: float) -> float:
    try:
        return dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp() - started_at
    except ValueError:
        return float("nan")


# --------------------------------------------------------------------------- the run


@dataclass
class Timeline:
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    """(seconds since the worker started, messages in the sink, Redis `intake` queue length)."""
    loads: list[tuple[float, float]] = field(default_factory=list)
    """(seconds since the worker started, cores other processes used in the 10 s before)."""

    def time_to(self, count: int) -> float | None:
        for at, seen, _ in self.samples:
            if seen >= count:
                return at
        return None

    def max_queue(self) -> int:
        return max((q for _, _, q in self.samples), default=0)


def run_worker(
    args: argparse.Namespace, env: dict[str, str], folder: Path, sink: SmtpSink, redis: RedisServer
) -> dict[str, Any]:
    database = database_name(args.database_url)
    worker = WorkerProcess(args.concurrency, env, folder)
    # Redis is shared plumbing, not the worker's own work: it counts as other work.
    cpu = CpuMeter(
        {
            "worker main": lambda: [worker.pid],
            "worker pool + beat": lambda: descendants(worker.pid),
            "postgres backends": lambda: postgres_backends(database),
            "bench (smtp sink)": lambda: [os.getpid()],
        }
    )
    profiler = Profiler(Path(args.profile) if args.profile else None, rate=50)
    profiling = contextlib.ExitStack()
    profile: Path | None = None
    timeline = Timeline()
    result: dict[str, Any] = {}
    before = cpu.read()
    started = time.monotonic()
    started_at = time.time()
    worker.start()
    try:
        ready_at: float | None = None
        next_sample = 0.0
        next_print = 30.0
        next_load = 10.0
        last_load = before
        deadline = started + args.timeout
        done_at: float | None = None
        while True:
            now = time.monotonic()
            elapsed = now - started
            seen = sink.count()
            if ready_at is None and "ready." in worker.logs()[-20000:]:
                ready_at = elapsed
                profile = profiling.enter_context(profiler.record("worker", worker.pid))
            if elapsed >= next_sample:
                timeline.samples.append((round(elapsed, 2), seen, redis.queue_length("intake")))
                next_sample += 1.0
            if elapsed >= next_load:
                # What the rest of the machine did meanwhile: a shared machine decides these numbers.
                snapshot = cpu.read()
                timeline.loads.append((round(elapsed, 1), CpuMeter.cores(last_load, snapshot)[OTHER_WORK]))
                last_load = snapshot
                next_load += 10.0
            if elapsed >= next_print:
                rate = seen / elapsed
                print(f"  {elapsed:6.0f} s  {seen:7d} sent  ({rate:6.1f}/s overall)", flush=True)
                next_print += 30.0
            if seen >= args.count:
                done_at = elapsed
                break
            if now >= deadline:
                break
            worker.check_alive()
            time.sleep(0.05)
        result["timed_out"] = done_at is None
        result["seconds"] = round(done_at if done_at is not None else time.monotonic() - started, 2)
        result["sent_in_time"] = sink.count()
        after = cpu.read()
        result["cores"] = CpuMeter.cores(before, after)
        # CPU per email does not depend on how busy the rest of the machine is; the wall time does.
        result["cpu_ms_per_email"] = {
            name: round(seconds * 1000 / max(1, result["sent_in_time"]), 2)
            for name, seconds in CpuMeter.seconds(before, after).items()
        }
        timeline.samples.append((round(time.monotonic() - started, 2), sink.count(), redis.queue_length("intake")))
        profiling.close()
        # Keep everything running a little longer: a message sent twice after the last new one shows now.
        if args.settle > 0 and done_at is not None:
            time.sleep(args.settle)
        result["queue_left"] = redis.queue_length("intake")
        result["ready_at"] = round(ready_at, 2) if ready_at is not None else None
        result["timeline"] = timeline
    finally:
        profiling.close()
        # Celery's warm shutdown: the tasks running now finish and record their outcome (the sink still
        # accepts), so the database read below agrees with the sink even after a timeout.
        worker.stop()
    result["db"] = database_state(args.database_url)
    result["log"] = log_summary(worker.logs(), started_at)
    result["log_path"] = str(worker.log_path)
    result["profile"] = str(profile) if profile is not None else None
    return result


def checks(count: int, sink: SmtpSink, seeded: Seeded, state: dict[str, Any]) -> dict[str, Any]:
    received = sink.snapshot()
    deliveries, recipients = [r.delivery for r in received], [r.rcpt_tos for r in received]
    by_delivery = Counter(deliveries)
    by_recipient = Counter(r for rcpt in recipients for r in rcpt)
    without_header = by_delivery.pop("", 0)
    duplicate_deliveries = sum(n - 1 for n in by_delivery.values() if n > 1)
    duplicate_recipients = sum(n - 1 for n in by_recipient.values() if n > 1)
    unknown_recipients = sum(1 for r in by_recipient if r not in seeded.emails)
    not_in_db = sum(1 for d in by_delivery if d not in state["sent_ids"])
    follow_ups, rows = state["follow_ups"], state["deliveries"]
    problems = []
    if len(deliveries) != count:
        problems.append(f"the sink holds {len(deliveries)} messages, not {count}")
    if duplicate_deliveries:
        problems.append(f"{duplicate_deliveries} X-Intake-Delivery seen more than once")
    if duplicate_recipients:
        problems.append(f"{duplicate_recipients} recipients got more than one email")
    if without_header:
        problems.append(f"{without_header} messages without X-Intake-Delivery")
    if unknown_recipients:
        problems.append(f"{unknown_recipients} recipients that were not seeded")
    if not_in_db:
        problems.append(f"{not_in_db} delivery ids in the sink that are not sent deliveries in the database")
    if follow_ups.get("claimed", 0) != count or len(follow_ups) != 1:
        problems.append(f"follow_ups by status {follow_ups}, expected all {count} claimed")
    if rows.get("sent", 0) != count or len(rows) != 1:
        problems.append(f"deliveries by status {rows}, expected all {count} sent")
    return {
        "messages": len(deliveries),
        "duplicate_deliveries": duplicate_deliveries,
        "duplicate_recipients": duplicate_recipients,
        "without_header": without_header,
        "unknown_recipients": unknown_recipients,
        "not_in_db": not_in_db,
        "problems": problems,
    }


def steady_rate(timeline: Timeline, count: int) -> dict[str, float | None]:
    """When the first email arrived, and the rate between 10 % and 90 % of the messages (steady state)."""
    first = timeline.time_to(1)
    low, high = timeline.time_to(max(1, count // 10)), timeline.time_to(count * 9 // 10)
    rate = (count * 9 // 10 - max(1, count // 10)) / (high - low) if low is not None and high and high > low else None
    return {
        "first_email_s": first,
        "t10_s": low,
        "t50_s": timeline.time_to(count // 2),
        "t90_s": high,
        "steady_emails_per_s": round(rate, 1) if rate is not None else None,
    }


def others_per_minute(timeline: Timeline) -> list[float]:
    """Cores used by processes not ours, averaged over each minute since the worker started."""
    minutes: dict[int, list[float]] = {}
    for at, cores in timeline.loads:
        minutes.setdefault(int((at - 0.1) // 60), []).append(cores)
    return [round(sum(v) / len(v), 2) for _, v in sorted(minutes.items())]


def per_minute(timeline: Timeline) -> list[int]:
    """Messages the sink accepted in each minute since the worker started."""
    out: list[int] = []
    last = 0
    for minute in range(1, int(timeline.samples[-1][0] // 60) + 2 if timeline.samples else 0):
        reached = max((seen for at, seen, _ in timeline.samples if at <= minute * 60), default=0)
        out.append(reached - last)
        last = reached
    return out


def worker_environment(args: argparse.Namespace, redis: RedisServer, sink: SmtpSink, data_dir: Path) -> dict[str, str]:
    repo = _repo()
    clean = {k: v for k, v in os.environ.items() if k not in settings_variables(repo)}
    chosen = {
        "INTAKE_ENV": "production",
        "INTAKE_DATA_DIR": str(data_dir),
        "PUBLIC_BASE_URL": "http://127.0.0.1",  # required in production; no link is followed here
        "DATABASE_URL": args.database_url,
        "REDIS_URL": redis.url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(sink.port),
        "SMTP_STARTTLS": "false",
        "JWT_SECRET": JWT_SECRET,
        "SENDING_WINDOW": ALWAYS,
        "WORKER_CONCURRENCY": str(args.concurrency),
    }
    if args.claim_seconds is not None:
        chosen["FOLLOW_UP_CLAIM_SECONDS"] = f"{args.claim_seconds:g}"
    for assignment in args.env:
        name, _, value = assignment.partition("=")
        chosen[name] = value
    # `workers` is not an installed package: the checkout `intake` comes from goes on the path after PYTHONPATH.
    path = [p for p in (clean.get("PYTHONPATH", ""), str(repo)) if p]
    return {**clean, "PYTHONPATH": os.pathsep.join(path), **chosen}


def worker_settings(env: dict[str, str]) -> dict[str, str]:
    """The intake settings the worker's environment sets (everything else is the default)."""
    names = settings_variables(_repo())
    return {k: v for k, v in sorted(env.items()) if k in names}


def effective_settings(env: dict[str, str]) -> dict[str, Any]:
    """The worker's settings as intake/settings.py reads them from `env` (what goes in the README)."""
    from intake.settings import load_settings

    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        settings = load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {
        "INTAKE_ENV": settings.app.env,
        "LOG_FORMAT": settings.app.log_format,
        "LOG_LEVEL": settings.app.log_level,
        "WORKER_CONCURRENCY": settings.broker.worker_concurrency,
        "pool": "prefork",
        "FOLLOW_UP_CLAIM_SECONDS": settings.followups.claim_interval,
        "FOLLOW_UP_CLAIM_BATCH": settings.followups.claim_batch,
        "SENDING_WINDOW": settings.followups.sending_window,
        "SWEEP_INTERVAL_SECONDS": settings.messaging.sweep_interval,
        "REPUBLISH_AFTER_SECONDS": settings.messaging.republish_after,
        "SENDING_LEASE_SECONDS": settings.messaging.sending_lease,
        "CELERY_VISIBILITY_TIMEOUT": settings.broker.visibility_timeout,
        "DATABASE_POOL_SIZE": settings.db.pool_size,
        "SMTP_STARTTLS": settings.smtp.starttls,
    }


def _repo() -> Path:
    import intake

    return Path(intake.__file__).resolve().parents[1]


def worker_code_path(env: dict[str, str], folder: Path) -> str:
    """Where the worker imports `intake` and `workers` from (PYTHONPATH may point at another checkout)."""
    out = subprocess.run(
        [sys.executable, "-c", "import intake, workers; print(intake.__file__); print(workers.__file__)"],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    )
    return ", ".join(str(Path(line).parent) for line in out.stdout.split())


# --------------------------------------------------------------------------- report


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    seconds = result["seconds"]
    sent = result["sent_in_time"]
    print()
    print(f"followups: {sent} of {args.count} emails in {seconds:.1f} s from the worker's start", flush=True)
    if result["timed_out"]:
        print(f"  TIMED OUT after {args.timeout:.0f} s")
    print(
        f"  {sent / seconds:.1f} emails/s overall; steady state (10-90 %): {result['rates']['steady_emails_per_s']}/s"
    )
    print(
        f"  worker ready at {result['ready_at']} s, first email at {result['rates']['first_email_s']} s, "
        f"50 % at {result['rates']['t50_s']} s, 90 % at {result['rates']['t90_s']} s"
    )
    target = "met" if result["target_met"] else "MISSED"
    print(f"  target: all {args.count} in under {TARGET_SECONDS:.0f} s: {target}")
    check = result["checks"]
    print(
        f"  duplicates={check['duplicate_deliveries']} (X-Intake-Delivery seen twice), "
        f"recipients twice={check['duplicate_recipients']}, without header={check['without_header']}, "
        f"unknown recipients={check['unknown_recipients']}"
    )
    db = result["db"]
    print(f"  database: follow_ups {db['follow_ups']}, deliveries {db['deliveries']}, attempts {db['attempts']}")
    print("  settings: " + ", ".join(f"{k}={v}" for k, v in result["settings"].items()))
    log = result["log"]
    print(
        f"  worker log: {log['claimed']} claimed in {log['claim_batches']} batches, "
        f"sweep re-published {log['sweep_republished']}, levels {log['levels']}"
    )
    if log["errors"]:
        print("  errors: " + "\n          ".join(log["errors"][:5]))
    print(f"  redis `intake` queue (messages): max {result['max_queue']}, left at the end {result['queue_left']}")
    print("  emails per minute: " + " ".join(str(n) for n in result["per_minute"]))
    print("  cores of other work, per minute: " + " ".join(str(n) for n in result["other_cores_per_minute"]))
    print("  cores used: " + ", ".join(f"{k} {v}" for k, v in result["cores"].items()))
    print("  CPU ms per email: " + ", ".join(f"{k} {v}" for k, v in result["cpu_ms_per_email"].items()))
    if result["disturbed"]:
        print(f"  NOTE: other processes used {result['cores'][OTHER_WORK]} cores: the machine was shared")
    if result.get("profile"):
        print(f"  profile (py-spy raw): {result['profile']}")
    if check["problems"]:
        print("  PROBLEMS: " + "; ".join(check["problems"]))
    print(f"  written to {args.output}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=100_000, help="due follow-ups to seed and send")
    parser.add_argument("--concurrency", type=int, default=4, help="pool processes of the worker (README: 4)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="its name must contain 'bench'")
    parser.add_argument(
        "--claim-seconds", type=float, default=None, help="FOLLOW_UP_CLAIM_SECONDS (default: the README's, 10)"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to keep running after the last email")
    parser.add_argument("--seed", type=int, default=20261124, help="random seed of the data")
    parser.add_argument("--quiet-timeout", type=float, default=60.0, help="wait this long for an idle machine")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="another worker setting")
    parser.add_argument("--profile", metavar="DIR", help="py-spy record the worker and its pool children")
    parser.add_argument("--keep-db", action="store_true", help="keep the database at the end")
    parser.add_argument("--keep-logs", action="store_true", help="keep the worker's log (else only on failure)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGINT too: a shell starts background jobs with it ignored, and Ctrl-C must still clean up.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    from intake.db.migrate import upgrade_head

    cores = os.cpu_count() or 1
    folder = Path(tempfile.mkdtemp(prefix="intake-bench-followups-"))
    redis = RedisServer(folder / "redis")
    sink = SmtpSink(keep_bodies=False)
    created = False
    keep_folder = args.keep_logs
    try:
        print(
            f"database {database_name(args.database_url)}: create, migrate, seed {args.count} due follow-ups",
            flush=True,
        )
        recreate_database(args.database_url)
        created = True
        upgrade_head(args.database_url)
        seeded = seed(args.database_url, args.count, args.seed)
        print(f"  seeded in {seeded.seconds:.1f} s ({seeded.spanish} in Spanish)", flush=True)
        redis.start()
        sink.start()
        env = worker_environment(args, redis, sink, folder / "data")
        code = worker_code_path(env, folder)
        settings = effective_settings(env)
        explicit = {k: ("***" if "SECRET" in k else v) for k, v in worker_settings(env).items()}
        print(f"worker code: {code}", flush=True)
        print("set for the worker: " + ", ".join(f"{k}={v}" for k, v in explicit.items()), flush=True)
        print("settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()), flush=True)
        quiet = wait_quiet(DISTURBED_CORES, args.quiet_timeout)
        print(f"start (machine busy {quiet} cores before): intake worker --beat --concurrency {args.concurrency}")
        run = run_worker(args, env, folder, sink, redis)
        state = run.pop("db")
        timeline: Timeline = run.pop("timeline")
        result: dict[str, Any] = {
            "benchmark": "followups",
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "count": args.count,
            "concurrency": args.concurrency,
            **run,
            "emails_per_s": round(run["sent_in_time"] / run["seconds"], 1),
            "target_seconds": TARGET_SECONDS,
            "target_met": not run["timed_out"] and run["seconds"] < TARGET_SECONDS,
            "rates": steady_rate(timeline, args.count),
            "per_minute": per_minute(timeline),
            "other_cores_per_minute": others_per_minute(timeline),
            "max_queue": timeline.max_queue(),
            "checks": checks(args.count, sink, seeded, state),
            "db": {k: v for k, v in state.items() if k != "sent_ids"},
            "settings": settings,
            "set_for_the_worker": explicit,
            "machine_busy_before": quiet,
            "disturbed": run["cores"][OTHER_WORK] > DISTURBED_CORES,
            "seed_seconds": round(seeded.seconds, 1),
            "spanish": seeded.spanish,
            "worker_code": code,
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "machine": {"cores": cores, "python": platform.python_version(), "platform": platform.platform()},
            "timeline": timeline.samples[:: max(1, len(timeline.samples) // 300)],
            "other_cores_timeline": timeline.loads,
        }
        result["duplicates"] = result["checks"]["duplicate_deliveries"]
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2, default=str) + "\n")
        report(result, args)
        failed = bool(result["checks"]["problems"]) or run["timed_out"]
        keep_folder = keep_folder or failed
        return 1 if failed or (args.check and not result["target_met"]) else 0
    except (KeyboardInterrupt, Interrupted) as exc:
        keep_folder = True
        print(f"\ninterrupted ({exc or 'Ctrl-C'}): stopping everything", file=sys.stderr, flush=True)
        return 130
    except BaseException:
        keep_folder = True
        raise
    finally:
        redis.stop()
        sink.stop()
        if created and not args.keep_db:
            with contextlib.suppress(Exception):
                drop_database(args.database_url)
        if keep_folder:
            print(f"logs kept in {folder}", flush=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
