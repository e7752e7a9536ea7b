"""Throughput and latency of `POST /api/intake` on PostgreSQL, against a raw-asyncpg ceiling.

Two HTTP servers, each one uvicorn process with one worker, are loaded in turn, on the same
freshly migrated PostgreSQL database (tables truncated before each):

* app: the service itself (`intake.app:create_app`), with Redis as the Celery broker, the
  production shape (no Celery worker runs; the published tasks are flushed at the end).
* ceiling: a bare Litestar app defined in this file. Its one POST endpoint decodes the same JSON
  body with msgspec and runs the app's one statement of a submission (find the lead by email or
  phone and lock it, update it or insert it, insert the screening, the outbox message and the
  consent: data-modifying CTEs) on a raw asyncpg pool: no SQLAlchemy, no validation, no scoring,
  no broker.

The load comes from a separate process: wrk with a Lua script when wrk is installed, else a
Python asyncio loader. It keeps --concurrency keep-alive connections busy. Every request is a
valid submission with a new email and phone (a new lead, as real traffic); about one in ten is an
emergency. After a warm-up each target runs for the same --duration.

Printed: req/s, p50 and p99 latency, errors (non-2xx and socket errors), the CPU each party used
(to show the loader is not the bottleneck), and the ratio app/ceiling against the goals: at least
0.5 of the ceiling's req/s, and p99 at most 50 ms. With --rounds N (default 3) the targets run in
turn N times; the ratio is the median of the rounds' ratios and the p99 the median p99. Written to
bench/results/intake.json.

    python bench/intake.py                       # about three minutes (3 rounds)
    python bench/intake.py --duration 60 --targets app --py-spy   # profile the app under load

The database named in --database-url must have "bench" in its name: it is dropped and created
anew, and dropped again at the end (unless --keep-db). The Redis DB of --redis-url is flushed
before and after. To benchmark another checkout of the code, put it first on PYTHONPATH: the
app server and the migration import `intake` from there (the output names the path used).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import fcntl
import importlib.util
import json
import os
import platform
import random
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
from litestar import Litestar, Request, Response, get, post

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this folder comes first on sys.path and this file would shadow the `intake`
# package: drop it, and put the repository on the path for `bench.support`.
if sys.path and sys.path[0] and Path(sys.path[0]).resolve() == HERE:
    sys.path.pop(0)
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from bench.support import CLOCK_TICKS, free_port, process_cpu, stop_process  # noqa: E402 - after the path is set

RESULTS = HERE / "results" / "intake.json"

INTAKE_PATH = "/api/intake"
CEILING_PATH = "/ceiling/intake"
GOAL_RATIO = 0.5
GOAL_P99_MS = 50.0

# ---------------------------------------------------------------------------------------------
# Request bodies: valid submissions, varied a little, with a new email and phone in each request.
# ---------------------------------------------------------------------------------------------

EMAIL_SLOT = "@@EMAIL@@"
PHONE_SLOT = "@@PHONE@@"
AREA_CODES = (561, 954, 305, 786)
FIRST_NAMES = ("Rosa", "James", "Lucía", "Ana", "Michael", "Carmen", "David", "Sofía", "Linda", "José")
LAST_NAMES = ("Delgado", "Smith", "García", "Johnson", "Pérez", "Williams", "Rodríguez", "Brown")


def _answers(rng: random.Random, kind: str) -> dict[str, Any]:
    """One valid set of answers; `kind` is routine, soon-ish (a flag or two) or emergency."""
    answers: dict[str, Any] = {
        "pain_area": rng.sample(["lower_back", "mid_back", "upper_back", "neck_shoulders"], rng.randint(1, 2)),
        "pain_now": rng.randint(1, 7),
        "duration": rng.choice(["under_24h", "1_7_days", "1_6_weeks", "6_12_weeks", "over_12_weeks"]),
        "injury": rng.choice(["none", "none", "none", "minor"]),
        "age": rng.randint(18, 80),
    }
    if rng.random() < 0.7:
        answers["improving"] = rng.choice(["better", "same", "worse"])
        answers["onset"] = rng.choice(["sudden", "gradual"])
        answers["recurring"] = rng.random() < 0.4
    if rng.random() < 0.5:
        spread = rng.choice(["none", "buttocks_hips", "one_leg"])
        answers["spread"] = spread
        if spread == "one_leg":
            answers["below_knee"] = rng.random() < 0.5
    if rng.random() < 0.6:
        answers["symptoms"] = rng.sample(
            ["sharp_sudden", "tight_stiff", "twitching_knots", "pulling_cramping", "hard_to_bend_lift"],
            rng.randint(1, 3),
        )
        answers["daily_impact"] = rng.randint(0, 8)
    if rng.random() < 0.5:
        answers["activity"] = rng.choice(["very_active", "moderately_active", "mostly_sitting"])
        answers["stress"] = rng.choice(["low", "moderate", "high"])
    if rng.random() < 0.3:
        answers["conditions"] = rng.sample(["anxiety", "obesity", "herniated_disc", "arthritis"], 1)
    if rng.random() < 0.3:
        answers["goals"] = "Get back to gardening and walking the dog without pain. " * rng.randint(1, 3)
    if kind == "flagged":
        flag = rng.choice(["fever", "rest_pain", "numbness_tingling", "cancer_history", "balance"])
        answers[flag] = True
    elif kind == "emergency":
        answers[rng.choice(["bladder_bowel", "saddle_numbness", "chest_abdomen"])] = True
        answers["pain_now"] = rng.randint(7, 10)
    else:
        answers["bladder_bowel"] = False
        answers["fever"] = False
    return answers


def body_templates(count: int = 40, seed: int = 2026) -> list[list[str]]:
    """Request bodies split around the email (and phone) slots.

    `[a, b]` means `a + email + b`; `[a, b, c]` means `a + email + b + phone + c`. Shared by the
    wrk Lua script and the Python loader so both send the same traffic.
    """
    rng = random.Random(seed)
    templates: list[list[str]] = []
    for i in range(count):
        kind = "emergency" if i % 10 == 3 else "flagged" if i % 10 in (5, 8) else "routine"
        has_phone = i % 8 != 7
        contact: dict[str, Any] = {
            "first_name": rng.choice(FIRST_NAMES),
            "last_name": rng.choice(LAST_NAMES),
            "email": EMAIL_SLOT,
            "preferred_contact": rng.choice(["email", "email", "phone", "text"]) if has_phone else "email",
            "location": rng.choice(["boca_raton", "pompano_beach", "in_home", "virtual"]),
        }
        if has_phone:
            contact["phone"] = PHONE_SLOT
        if rng.random() < 0.7:
            contact["zip"] = rng.choice(["33431", "33060", "33432-1234"])
        body = {
            "language": "es" if i % 4 == 1 else "en",
            "contact": contact,
            "consent": {"privacy": True, "email_followup": rng.random() < 0.8, "sms": rng.random() < 0.3},
            "answers": _answers(rng, kind),
        }
        text = json.dumps(body, separators=(",", ":"))
        head, rest = text.split(EMAIL_SLOT)
        templates.append([head, *rest.split(PHONE_SLOT)])
    return templates


def make_body(templates: list[list[str]], prefix: str, n: int) -> bytes:
    """Request `n` of a run: the same body the Lua script builds for that number."""
    parts = templates[n % len(templates)]
    email = f"p{prefix}.{n}@example.com"
    if len(parts) == 2:
        return (parts[0] + email + parts[1]).encode()
    area = AREA_CODES[(n // 8_000_000) % len(AREA_CODES)]
    phone = f"({area}) {200 + (n // 10_000) % 800:03d}-{n % 10_000:04d}"
    return (parts[0] + email + parts[1] + phone + parts[2]).encode()


# ---------------------------------------------------------------------------------------------
# The ceiling: the same statements on raw asyncpg, served by its own uvicorn process.
# ---------------------------------------------------------------------------------------------

# The lead columns a submission writes. The newer ones are written when the schema has them, so the
# ceiling keeps doing the app's work as the leads table grows; a required column it does not know
# stops the ceiling at start-up with its name.
_LEAD_COLUMNS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "preferred_contact",
    "location",
    "zip",
    "language",
    "tier",
    "tier_rank",
    "route",
    "score",
)
_LEAD_OPTIONAL = ("urgency", "search_text")
_INSERT_SCREENING = """
INSERT INTO screenings (id, created_at, lead_id, language, answers, rule_set_version, tier, route, score, reasons)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""
_INSERT_OUTBOX = """
INSERT INTO outbox_messages (id, created_at, topic, ref_id, queue, publish_count)
VALUES ($1, $2, 'route_screening', $3, $4, 0)
"""
_INSERT_CONSENT = """
INSERT INTO consents (id, created_at, lead_id, screening_id, privacy_notice_version, privacy_accepted_at,
                      email_followup, sms)
VALUES ($1, $2, $3, $4, $5, $2, $6, $7)
"""
_WRITTEN = {
    "screenings": {"id", "created_at", "lead_id", "language", "answers", "rule_set_version", "tier", "route"}
    | {"score", "reasons"},
    "outbox_messages": {"id", "created_at", "topic", "ref_id", "queue", "publish_count"},
    "consents": {"id", "created_at", "lead_id", "screening_id", "privacy_notice_version", "privacy_accepted_at"}
    | {"email_followup", "sms"},
}
_EMERGENCY_FLAGS = ("bladder_bowel", "saddle_numbness", "chest_abdomen")


@dataclass(frozen=True)
class CeilingSql:
    submit: str
    """The app's one statement per submission ($1 lead id, $2 now, then the lead columns, then
    screening id, language, answers, tier, route, score, reasons, outbox id, queue, consent id,
    email_followup, sms)."""
    lead_columns: tuple[str, ...]


async def ceiling_sql(con: asyncpg.Connection) -> CeilingSql:
    """The submission statement for the schema in place; refuses a schema with required columns it would skip.

    It is the app's statement (intake/leads/store.py), written out by hand: find the lead by email
    or phone and lock it, update it or insert a new one, insert the screening, the outbox message
    and the consent, all in one statement (data-modifying CTEs), so one round trip.
    """
    rows = await con.fetch(
        """
        SELECT table_name, column_name, udt_name, is_nullable = 'NO' AND column_default IS NULL AS required
        FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = ANY($1::text[])
        ORDER BY table_name, ordinal_position
        """,
        ["leads", *_WRITTEN],
    )
    columns: dict[str, list[str]] = {}
    required: dict[str, set[str]] = {}
    types: dict[tuple[str, str], str] = {}
    for row in rows:
        columns.setdefault(row["table_name"], []).append(row["column_name"])
        types[row["table_name"], row["column_name"]] = row["udt_name"]
        if row["required"]:
            required.setdefault(row["table_name"], set()).add(row["column_name"])
    lead_columns = _LEAD_COLUMNS + tuple(c for c in _LEAD_OPTIONAL if c in columns.get("leads", []))
    written = {
        **_WRITTEN,
        "leads": {"id", "created_at", "updated_at", "last_screened_at", "status", *lead_columns},
    }
    unknown = sorted(f"{t}.{c}" for t, cols in required.items() for c in cols - written[t])
    if unknown:
        raise RuntimeError(f"the ceiling does not write required column(s) {', '.join(unknown)}: update it")

    numbers = iter(range(1, 1000))

    def param(table: str, column: str) -> str:
        return f"${next(numbers)}::{types[table, column]}"

    lead_id, now = param("leads", "id"), param("leads", "created_at")
    lead = {c: param("leads", c) for c in lead_columns}
    screening = {c: param("screenings", c) for c in ("id", "language", "answers", "tier", "route", "score", "reasons")}
    outbox_id, queue = param("outbox_messages", "id"), param("outbox_messages", "queue")
    consent_id = param("consents", "id")
    email_followup, sms = param("consents", "email_followup"), param("consents", "sms")
    kept = "coalesce(ltrim(found.phone, '+'), '')"
    assignments = [
        f"{c} = coalesce({v}, leads.{c})"
        if c in {"phone", "zip"}
        else f"{c} = CASE WHEN {lead['phone']} IS NULL THEN left({v} || {kept}, 500) ELSE {v} END"
        if c == "search_text"
        else f"{c} = {v}"
        for c, v in lead.items()
    ]
    submit = f"""
WITH found AS (
    SELECT id, phone FROM leads WHERE email = {lead["email"]} OR phone = {lead["phone"]}
    ORDER BY CASE WHEN email = {lead["email"]} THEN 0 ELSE 1 END, created_at LIMIT 1 FOR UPDATE
), updated AS (
    UPDATE leads SET updated_at = {now}, last_screened_at = {now}, {", ".join(assignments)}
    FROM found WHERE leads.id = found.id RETURNING leads.id
), inserted AS (
    INSERT INTO leads (id, created_at, updated_at, last_screened_at, status, {", ".join(lead_columns)})
    SELECT {lead_id}, {now}, {now}, {now}, 'new', {", ".join(lead.values())}
    WHERE NOT EXISTS (SELECT FROM found) RETURNING id
), lead AS (
    SELECT id FROM updated UNION ALL SELECT id FROM inserted
), screening AS (
    INSERT INTO screenings (id, created_at, lead_id, language, answers, rule_set_version, tier, route, score, reasons)
    SELECT {screening["id"]}, {now}, lead.id, {screening["language"]}, {screening["answers"]}, '2026-11.1',
           {screening["tier"]}, {screening["route"]}, {screening["score"]}, {screening["reasons"]} FROM lead
), outbox AS (
    INSERT INTO outbox_messages (id, created_at, topic, ref_id, queue, publish_count)
    VALUES ({outbox_id}, {now}, 'route_screening', {screening["id"]}, {queue}, 0)
), consent AS (
    INSERT INTO consents (id, created_at, lead_id, screening_id, privacy_notice_version, privacy_accepted_at,
                          email_followup, sms)
    SELECT {consent_id}, {now}, lead.id, {screening["id"]}, '2026-11-01', {now}, {email_followup}, {sms} FROM lead
)
SELECT id FROM lead"""
    return CeilingSql(submit=submit, lead_columns=lead_columns)


def create_ceiling_app() -> Litestar:
    """uvicorn factory of the ceiling (env: BENCH_CEILING_DSN, BENCH_CEILING_POOL_SIZE)."""
    from uuid_utils.compat import uuid7 as new_id  # the app's ids: UUIDv7, time-ordered

    dsn = os.environ["BENCH_CEILING_DSN"]
    pool_size = int(os.environ.get("BENCH_CEILING_POOL_SIZE", "20"))
    state: dict[str, Any] = {}
    encode = msgspec.json.encode

    async def open_pool(_: Litestar) -> None:
        state["pool"] = pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
        async with pool.acquire() as con:
            state["sql"] = await ceiling_sql(con)

    async def close_pool(_: Litestar) -> None:
        await state["pool"].close()

    @get("/health", sync_to_thread=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @post(CEILING_PATH, status_code=201)
    async def submit(request: Request[Any, Any, Any]) -> Response[bytes]:
        sql: CeilingSql = state["sql"]
        data = msgspec.json.decode(await request.body())
        contact, consent, answers = data["contact"], data["consent"], data["answers"]
        email = contact["email"].strip().lower()
        raw_phone = contact.get("phone")
        phone = "+1" + "".join(c for c in raw_phone if c.isdigit()) if raw_phone else None
        emergency = any(answers.get(flag) for flag in _EMERGENCY_FLAGS)
        tier, rank, route, score = (
            ("emergency", 0, "seek_care_now", 85) if emergency else ("routine", 3, "book_consultation", 6)
        )
        reasons = [{"code": "bladder_bowel", "tier": tier, "text": "Seek care now."}] if emergency else []
        lead = {
            **contact,
            "email": email,
            "phone": phone,
            "zip": contact.get("zip"),
            "language": data["language"],
            "tier": tier,
            "tier_rank": rank,
            "route": route,
            "score": score,
            "urgency": rank * 200 + (100 - score),
            "search_text": f"{contact['first_name']} {contact['last_name']} {email} {(phone or '')[1:]}".lower(),
        }
        values = [lead[c] for c in sql.lead_columns]
        now = dt.datetime.now(dt.UTC)
        screening_id = new_id()
        async with state["pool"].acquire() as con:
            lead_id = await con.fetchval(
                sql.submit,
                new_id(),
                now,
                *values,
                screening_id,
                data["language"],
                encode(answers).decode(),
                tier,
                route,
                score,
                encode(reasons).decode(),
                new_id(),
                "alerts" if emergency else "intake",
                new_id(),
                bool(consent.get("email_followup")),
                bool(consent.get("sms")),
            )
        body = encode({"lead_id": str(lead_id), "screening_id": str(screening_id), "tier": tier, "route": route})
        return Response(body, status_code=201, media_type="application/json")

    return Litestar(route_handlers=[health, submit], on_startup=[open_pool], on_shutdown=[close_pool], debug=False)


# ---------------------------------------------------------------------------------------------
# Load generators: wrk + Lua, or a Python asyncio loader in a child process.
# ---------------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    requests: int
    """Completed responses (any status)."""
    non_2xx: int
    socket_errors: int
    elapsed_s: float
    rps: float
    """2xx responses per second."""
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


_LUA = r"""
-- Generated by bench/intake.py: a valid submission with a new email and phone per request.
local variants = {
%(variants)s
}
local areas = {%(areas)s}
local path = "%(path)s"
local headers = {["Content-Type"] = "application/json"}
local prefix, nthreads, counter, non2xx = "x", 1, 0, 0
local next_id = 0

function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end

function init(args)
  prefix = args[1]
  nthreads = tonumber(args[2])
end

function request()
  local n = counter * nthreads + thread_id
  counter = counter + 1
  local v = variants[(n %% #variants) + 1]
  local email = "p" .. prefix .. "." .. string.format("%%d", n) .. "@example.com"
  local body
  if #v == 2 then
    body = v[1] .. email .. v[2]
  else
    local area = areas[(math.floor(n / 8000000) %% #areas) + 1]
    local phone = string.format("(%%d) %%03d-%%04d", area, 200 + math.floor(n / 10000) %% 800, n %% 10000)
    body = v[1] .. email .. v[2] .. phone .. v[3]
  end
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,' ..
    '"status":%%d,"timeout":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,"max_us":%%d,"mean_us":%%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def write_lua(path: Path, url_path: str, templates: list[list[str]]) -> None:
    def lua_string(text: str) -> str:
        assert "]==]" not in text
        return f"[==[{text}]==]"

    variants = ",\n".join("  {" + ", ".join(lua_string(p) for p in parts) + "}" for parts in templates)
    path.write_text(_LUA % {"variants": variants, "areas": ", ".join(map(str, AREA_CODES)), "path": url_path})


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0] if first else "wrk"


def run_wrk(
    wrk: str, script: Path, url: str, duration: float, concurrency: int, threads: int, prefix: str
) -> LoadResult:
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
        "--",
        prefix,
        str(threads),
    ]
    out = run_child(argv, timeout=duration + 60)
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    raw = json.loads(line.removeprefix("BENCHJSON "))
    elapsed = raw["duration_us"] / 1e6
    ok = raw["requests"] - raw["status"]
    return LoadResult(
        requests=raw["requests"],
        non_2xx=raw["status"],
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        elapsed_s=round(elapsed, 3),
        rps=round(ok / elapsed, 1),
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        mean_ms=round(raw["mean_us"] / 1000, 3),
    )


async def _python_load(
    host: str, port: int, path: str, duration: float, concurrency: int, prefix: str
) -> dict[str, Any]:
    templates = body_templates()
    latencies: list[int] = []
    counts = {"non_2xx": 0, "socket_errors": 0, "requests": 0}
    next_n = 0
    started = time.perf_counter()
    deadline = started + duration
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"

    async def connection() -> None:
        nonlocal next_n
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while time.perf_counter() < deadline:
            try:
                if writer is None or reader is None:
                    reader, writer = await asyncio.open_connection(host, port)
                body = make_body(templates, prefix, next_n)
                next_n += 1
                t0 = time.perf_counter_ns()
                writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
                status_and_headers = await reader.readuntil(b"\r\n\r\n")
                lines = status_and_headers.decode("latin-1").split("\r\n")
                status = int(lines[0].split(" ", 2)[1])
                length, close = 0, False
                for ln in lines[1:]:
                    name, _, value = ln.partition(":")
                    name = name.strip().lower()
                    if name == "content-length":
                        length = int(value)
                    elif name == "connection" and value.strip().lower() == "close":
                        close = True
                await reader.readexactly(length)
                latencies.append(time.perf_counter_ns() - t0)
                counts["requests"] += 1
                if not 200 <= status < 300:
                    counts["non_2xx"] += 1
                if close:
                    writer.close()
                    reader = writer = None
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                counts["socket_errors"] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.01)
        if writer is not None:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] / 1e6

    return {
        **counts,
        "elapsed_s": elapsed,
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": latencies[-1] / 1e6 if latencies else 0.0,
        "mean_ms": sum(latencies) / len(latencies) / 1e6 if latencies else 0.0,
    }


def python_loader_child(config_json: str) -> None:
    """Entry of the child process that runs the Python loader; prints one BENCHJSON line."""
    config = json.loads(config_json)
    if importlib.util.find_spec("uvloop"):
        import uvloop

        uvloop.install()
    result = asyncio.run(_python_load(**config))
    print("BENCHJSON " + json.dumps(result), flush=True)


def run_python_loader(url: str, duration: float, concurrency: int, prefix: str) -> LoadResult:
    parts = urlsplit(url)
    config = {
        "host": parts.hostname,
        "port": parts.port,
        "path": parts.path,
        "duration": duration,
        "concurrency": concurrency,
        "prefix": prefix,
    }
    out = run_child(
        [sys.executable, str(Path(__file__).resolve()), "--loader-child", json.dumps(config)],
        timeout=duration + 60,
    )
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"the Python loader printed no result:\n{out}")
    raw = json.loads(line.removeprefix("BENCHJSON "))
    ok = raw["requests"] - raw["non_2xx"]
    return LoadResult(
        requests=raw["requests"],
        non_2xx=raw["non_2xx"],
        socket_errors=raw["socket_errors"],
        elapsed_s=round(raw["elapsed_s"], 3),
        rps=round(ok / raw["elapsed_s"], 1),
        p50_ms=round(raw["p50_ms"], 3),
        p90_ms=round(raw["p90_ms"], 3),
        p99_ms=round(raw["p99_ms"], 3),
        max_ms=round(raw["max_ms"], 3),
        mean_ms=round(raw["mean_ms"], 3),
    )


# ---------------------------------------------------------------------------------------------
# Processes: every child is started in its own session and ended (group-wise) on any exit.
# ---------------------------------------------------------------------------------------------

_children: list[subprocess.Popen[bytes]] = []


def _stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    stop_process(proc, timeout=grace)
    if proc in _children:
        _children.remove(proc)


def stop_all_children() -> None:
    for proc in list(_children):
        _stop(proc)


def run_child(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    """Run a load generator to the end; its stdout (stderr shown on failure)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    _children.append(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        _stop(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}:\n{err.decode(errors='replace')}")
    return out.decode(errors="replace")


@dataclass
class Server:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _children.append(self.proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} server exited at start:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} server not ready after {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------------------------------------
# CPU accounting from /proc: how much of the 2 cores each party used during the measured run.
# ---------------------------------------------------------------------------------------------


def _cpu_by_name(names: tuple[str, ...], database: str | None = None) -> float:
    """CPU seconds of the processes named so; for PostgreSQL, only the backends of `database`.

    A backend's title reads "postgres: 15/main: user database host(port) state"; the shared
    processes (WAL writer, checkpointer, ...) name no database and are counted as ours. Backends
    of other databases (someone else's tests on the same server) are not.
    """
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
                if comm not in names:
                    continue
                if database is not None:
                    title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    if "(" in title and f" {database} " not in title:
                        continue
            except OSError:
                continue
            total += process_cpu(int(entry.name))
    return total


def _machine_busy() -> tuple[float, float]:
    """(busy seconds, total seconds) summed over all cores since boot."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLOCK_TICKS, sum(values) / CLOCK_TICKS


@dataclass
class CpuSample:
    server: float
    postgres: float
    redis: float
    loader: float
    machine: tuple[float, float]

    @classmethod
    def take(cls, server_pid: int, database: str) -> CpuSample:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return cls(
            server=process_cpu(server_pid),
            postgres=_cpu_by_name(("postgres", "postmaster"), database),
            redis=_cpu_by_name(("redis-server",)),
            loader=children.ru_utime + children.ru_stime,
            machine=_machine_busy(),
        )

    def cores_since(self, before: CpuSample, seconds: float) -> dict[str, float]:
        """Cores used on average (1.0 = one core busy all the time)."""

        def per(a: float, b: float) -> float:
            return round((a - b) / seconds, 2) if seconds > 0 else 0.0

        busy = self.machine[0] - before.machine[0]
        total = self.machine[1] - before.machine[1]
        cores = os.cpu_count() or 1
        used = {
            "server": per(self.server, before.server),
            "postgres": per(self.postgres, before.postgres),
            "redis": per(self.redis, before.redis),
            "loader": per(self.loader, before.loader),
            "machine": round(busy / total * cores, 2) if total > 0 else 0.0,
        }
        # Anything else on the machine (another job, a test run) competes for the same cores.
        ours = used["server"] + used["postgres"] + used["redis"] + used["loader"]
        used["other"] = round(max(0.0, used["machine"] - ours), 2)
        return used


# ---------------------------------------------------------------------------------------------
# Database and Redis.
# ---------------------------------------------------------------------------------------------


def database_urls(url: str) -> tuple[str, str, str, str]:
    """(SQLAlchemy URL for the app, asyncpg DSN, maintenance DSN, database name)."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgresql", "postgresql+asyncpg", "postgres"}:
        raise SystemExit(f"--database-url must be a postgresql:// URL, got {url!r}")
    name = parts.path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"refusing to drop and recreate database {name!r}: use a name containing 'bench'")
    plain = urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, ""))
    app = urlunsplit(("postgresql+asyncpg", parts.netloc, parts.path, parts.query, ""))
    maintenance = urlunsplit(("postgresql", parts.netloc, "/postgres", parts.query, ""))
    return app, plain, maintenance, name


async def _recreate_database(maintenance: str, name: str, drop_only: bool = False) -> None:
    con = await asyncpg.connect(maintenance)
    try:
        await con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            await con.execute(f'CREATE DATABASE "{name}"')
    finally:
        await con.close()


async def _db(dsn: str, *statements: str) -> list[Any]:
    con: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        return [
            await con.fetchval(s) if s.lstrip().upper().startswith("SELECT") else await con.execute(s)
            for s in statements
        ]
    finally:
        await con.close()


def reset_tables(dsn: str) -> None:
    """Empty every table but Alembic's, so each target starts from the same empty database."""

    async def reset() -> None:
        con = await asyncpg.connect(dsn)
        try:
            tables = await con.fetch(
                "SELECT quote_ident(tablename) AS name FROM pg_tables "
                "WHERE schemaname = current_schema() AND tablename <> 'alembic_version'"
            )
            await con.execute(f"TRUNCATE {', '.join(t['name'] for t in tables)} CASCADE")
            await con.execute("VACUUM ANALYZE")
            await con.execute("CHECKPOINT")
        finally:
            await con.close()

    asyncio.run(reset())


_REPLAN_SECONDS = 2.0


def analyze(dsn: str) -> None:
    """Statistics from the rows the warm-up wrote, as a clinic's database has from its history.

    Without it the planner keeps planning for the empty tables the target started from: the
    servers' prepared statements settle on generic plans that scan the whole leads table, each
    request slower than the one before, for a minute until autovacuum analyzes. ANALYZE also
    makes every server re-plan its prepared statements.
    """
    asyncio.run(_db(dsn, "ANALYZE"))


def screening_count(dsn: str) -> int:
    return int(asyncio.run(_db(dsn, "SELECT count(*) FROM screenings"))[0])


def settle(dsn: str, limit: float = 20.0, quiet: float = 1.0) -> int:
    """Wait for the requests the loader gave up on at its deadline to finish; the screening count.

    Done when the count has not moved for `quiet` seconds (or after `limit` seconds).
    """
    deadline = time.monotonic() + limit
    last, since = screening_count(dsn), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.25)
        now = screening_count(dsn)
        if now != last:
            last, since = now, time.monotonic()
    return last


def flush_redis(url: str) -> int:
    """FLUSHDB; how many keys there were."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = int(client.dbsize())
        client.flushdb()
        return keys
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------
# The run.
# ---------------------------------------------------------------------------------------------


@dataclass
class TargetResult:
    target: str
    url: str
    load: LoadResult
    warmup: LoadResult | None
    cpu_cores: dict[str, float]
    rows_written: int
    extra: dict[str, Any] = field(default_factory=dict)
    round: int = 1


def uvicorn_argv(factory: str, port: int, app_dir: Path | None, loop: str, http: str) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        factory,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
        "--loop",
        loop,
        "--http",
        http,
    ]
    if app_dir is not None:
        argv += ["--app-dir", str(app_dir)]
    return argv


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Load POST /api/intake and a raw-asyncpg ceiling on PostgreSQL; print req/s, p50, p99.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds per target")
    p.add_argument("--rounds", type=int, default=3, help="rounds, each running every target in turn")
    p.add_argument("--warmup", type=float, default=5.0, help="warm-up seconds per target (not measured)")
    p.add_argument("--concurrency", type=int, default=32, help="keep-alive connections kept busy")
    p.add_argument(
        "--database-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/intake_bench",
        help="benchmark database (name must contain 'bench'): dropped, created and migrated",
    )
    p.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/15",
        help="the app's Celery broker (REDIS_URL); this DB is flushed before and after",
    )
    p.add_argument("--no-redis", action="store_true", help="use the app's embedded filesystem broker instead")
    p.add_argument("--loader", choices=["auto", "wrk", "python"], default="auto", help="load generator")
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (1 leaves the most CPU to the servers)")
    p.add_argument("--targets", default="app,ceiling", help="comma-separated, run in this order")
    p.add_argument(
        "--pool-size", type=int, default=20, help="database connections of each server (the app's DATABASE_POOL_SIZE)"
    )
    p.add_argument("--log-level", default="INFO", help="the app's LOG_LEVEL (production's default: INFO)")
    p.add_argument("--keep-db", action="store_true", help="leave the benchmark database in place")
    p.add_argument(
        "--py-spy",
        nargs="?",
        const="py-spy",
        metavar="PATH",
        help="record each server's stacks while it holds the GIL (its CPU) with py-spy, collapsed format, "
        "next to --output",
    )
    p.add_argument("--output", type=Path, default=RESULTS, help="JSON result file")
    p.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    p.add_argument("--loader-child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(args.targets) - {"app", "ceiling"}
    if unknown or not args.targets:
        p.error(f"--targets takes app and/or ceiling, got {args.targets}")
    return args


def intake_location(env: dict[str, str], cwd: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-c", "import intake, pathlib; print(pathlib.Path(intake.__file__).parent)"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def migrate(app_url: str, env: dict[str, str], cwd: Path) -> None:
    code = "import sys; from intake.db.migrate import upgrade_head; upgrade_head(sys.argv[1])"
    done = subprocess.run(
        [sys.executable, "-c", code, app_url], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the migration failed:\n{done.stderr[-3000:]}")


def load(
    args: argparse.Namespace, wrk: str | None, script: Path | None, url: str, seconds: float, prefix: str
) -> LoadResult:
    if wrk is not None and script is not None:
        return run_wrk(wrk, script, url, seconds, args.concurrency, args.wrk_threads, prefix)
    return run_python_loader(url, seconds, args.concurrency, prefix)


def run_target(
    name: str,
    args: argparse.Namespace,
    server: Server,
    url: str,
    dsn: str,
    wrk: str | None,
    script: Path | None,
    run_id: str,
    workdir: Path,
) -> TargetResult:
    reset_tables(dsn)
    if not args.no_redis:
        flush_redis(args.redis_url)
    print(f"  {name}: starting uvicorn on :{server.port}", flush=True)
    server.start()
    try:
        warm = None
        if args.warmup > 0:
            print(f"  {name}: warm-up {args.warmup:g}s", flush=True)
            warm = load(args, wrk, script, url, args.warmup, f"{run_id}{name[0]}w")
            settle(dsn)
            analyze(dsn)
            # ANALYZE made every connection re-plan its statements: let them, before measuring.
            load(args, wrk, script, url, _REPLAN_SECONDS, f"{run_id}{name[0]}r")
        print(f"  {name}: measuring {args.duration:g}s at concurrency {args.concurrency}", flush=True)
        rows_before = settle(dsn)
        spy = None
        extra: dict[str, Any] = {}
        if args.py_spy:
            out = args.output.parent / f"intake-{name}.pyspy.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen(
                [
                    args.py_spy,
                    "record",
                    "--pid",
                    str(server.pid),
                    "--duration",
                    str(round(args.duration)),
                    "--rate",
                    "200",
                    "--gil",
                    "--format",
                    "raw",
                    "--nonblocking",
                    "--output",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            _children.append(spy)
            extra["py_spy"] = str(out)
        before = CpuSample.take(server.pid, urlsplit(dsn).path.lstrip("/"))
        started = time.perf_counter()
        result = load(args, wrk, script, url, args.duration, f"{run_id}{name[0]}m")
        cpu = CpuSample.take(server.pid, urlsplit(dsn).path.lstrip("/")).cores_since(
            before, time.perf_counter() - started
        )
        if spy is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(timeout=30)
            _stop(spy)
        rows = settle(dsn) - rows_before
    finally:
        server.stop()
    if result.errors:
        log_tail = server.log.read_text(errors="replace")[-2000:]
        extra["server_log_tail"] = log_tail
    return TargetResult(name, url, result, warm, cpu, rows, extra)


def server_ms_per_request(r: TargetResult) -> float:
    """The server process's CPU time per 2xx response: what a request costs, whatever else runs."""
    return round(r.cpu_cores["server"] / r.load.rps * 1000, 2) if r.load.rps else 0.0


def print_table(results: list[TargetResult]) -> None:
    head = f"{'target':<9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'cpu ms/req':>12}"
    head += "   cores: server / postgres / loader / other (busy of N)"
    print(head)
    print("-" * len(head))
    for r in results:
        c = r.cpu_cores
        name = f"{r.target}#{r.round}" if len({x.round for x in results}) > 1 else r.target
        print(
            f"{name:<9}{r.load.rps:>9.1f}{r.load.p50_ms:>9.1f}{r.load.p99_ms:>9.1f}{r.load.errors:>8}"
            f"{server_ms_per_request(r):>12.2f}"
            f"   {c['server']:.2f} / {c['postgres']:.2f} / {c['loader']:.2f} / {c['other']:.2f}"
            f" ({c['machine']:.2f} of {os.cpu_count()})"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.loader_child:
        python_loader_child(args.loader_child)
        return 0
    signal.signal(signal.SIGTERM, _on_sigterm)
    if args.py_spy:
        args.py_spy = shutil.which(args.py_spy)
        if args.py_spy is None:
            raise SystemExit("--py-spy: py-spy not found (pip install py-spy, or give its path)")
    app_url, dsn, maintenance, db_name = database_urls(args.database_url)

    wrk = shutil.which("wrk") if args.loader in {"auto", "wrk"} else None
    if args.loader == "wrk" and wrk is None:
        raise SystemExit("--loader wrk: wrk is not installed (apt-get install wrk)")
    loader = (
        f"{wrk_version(wrk)} ({args.wrk_threads} thread{'s' if args.wrk_threads > 1 else ''}, Lua bodies)"
        if wrk
        else "python asyncio loader (child process" + (", uvloop)" if importlib.util.find_spec("uvloop") else ")")
    )
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    # Two runs on one database would truncate and drop it under each other.
    lock = (Path(tempfile.gettempdir()) / f"intake-bench-{db_name}.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"another benchmark is running on database {db_name}; wait for it") from None
    run_id = uuid.uuid4().hex[:6]
    created_db = False
    workdir = Path(tempfile.mkdtemp(prefix="intake-bench-"))
    results: list[TargetResult] = []
    try:
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "INTAKE_"))}
        app_env = {
            **base_env,
            "DATABASE_URL": app_url,
            "DATABASE_POOL_SIZE": str(args.pool_size),
            "INTAKE_DATA_DIR": str(workdir / "data"),
            "LOG_LEVEL": args.log_level,
            # As production runs it: JSON logs (INTAKE_ENV=production needs a real JWT secret).
            "INTAKE_ENV": "production",
            "JWT_SECRET": secrets.token_urlsafe(48),
            # All the load comes from one address: the per-client limit (10 a minute) would answer 429.
            "INTAKE_RATE_LIMIT_PER_MINUTE": "0",
        }
        if not args.no_redis:
            app_env["REDIS_URL"] = args.redis_url
            try:
                stale = flush_redis(args.redis_url)
            except Exception as exc:
                raise SystemExit(f"Redis at {args.redis_url} is not reachable ({exc}); run with --no-redis") from exc
            if stale:
                print(f"note: flushed {stale} stale keys from {args.redis_url}")
        code_at = intake_location(app_env, workdir)
        # The checkout that holds `intake` holds `workers` too (the API imports both): first on the path.
        code_root = str(Path(code_at).parent)
        app_env["PYTHONPATH"] = os.pathsep.join(p for p in (code_root, app_env.get("PYTHONPATH")) if p)
        print(f"intake benchmark: {', '.join(args.targets)}; {args.warmup:g}s warm-up + {args.duration:g}s each")
        print(f"  loader: {loader}")
        print(f"  servers: uvicorn --workers 1 --loop {loop} --http {http}; app code from {code_at}")
        print(
            f"  database: {db_name} (dropped, created, migrated); broker: "
            f"{'filesystem (embedded)' if args.no_redis else args.redis_url}",
            flush=True,
        )
        asyncio.run(_recreate_database(maintenance, db_name))
        created_db = True
        migrate(app_url, app_env, workdir)

        script = None
        if wrk:
            script = workdir / "intake.lua"
        servers: dict[str, tuple[Server, str]] = {}
        for name in args.targets:
            port = free_port()
            if name == "app":
                server = Server(
                    "app",
                    uvicorn_argv("intake.app:create_app", port, Path(code_root), loop, http),
                    app_env,
                    workdir,
                    port,
                    workdir / "app.log",
                )
                url = f"http://127.0.0.1:{port}{INTAKE_PATH}"
            else:
                ceiling_env = {
                    **base_env,
                    "BENCH_CEILING_DSN": dsn,
                    "BENCH_CEILING_POOL_SIZE": str(args.pool_size),
                }
                server = Server(
                    "ceiling",
                    uvicorn_argv("bench.intake:create_ceiling_app", port, ROOT, loop, http),
                    ceiling_env,
                    workdir,
                    port,
                    workdir / "ceiling.log",
                )
                url = f"http://127.0.0.1:{port}{CEILING_PATH}"
            servers[name] = (server, url)

        templates = body_templates()
        # Rounds alternate the targets, so a neighbour's burst on a shared machine hits one round of
        # each rather than all of one target; the ratio is the median of the rounds' ratios.
        for round_no in range(1, args.rounds + 1):
            for name in args.targets:
                server, url = servers[name]
                target_script = None
                if script is not None:
                    target_script = script.with_name(f"{name}.lua")
                    write_lua(target_script, urlsplit(url).path, templates)
                if args.rounds > 1:
                    print(f"  round {round_no} of {args.rounds}", flush=True)
                result = run_target(name, args, server, url, dsn, wrk, target_script, f"{run_id}{round_no}", workdir)
                result.round = round_no
                results.append(result)
    finally:
        stop_all_children()
        if created_db and not args.keep_db:
            with contextlib.suppress(Exception):
                asyncio.run(_recreate_database(maintenance, db_name, drop_only=True))
        if not args.no_redis:
            with contextlib.suppress(Exception):
                flush_redis(args.redis_url)
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print_table(results)
    goals: dict[str, Any] = {"ratio_min": GOAL_RATIO, "p99_max_ms": GOAL_P99_MS}
    missed = False
    rounds = [{r.target: r for r in results if r.round == n} for n in range(1, args.rounds + 1)]
    ratios = [
        one["app"].load.rps / one["ceiling"].load.rps
        for one in rounds
        if "app" in one and "ceiling" in one and one["ceiling"].load.rps > 0
    ]
    if ratios:
        ratio = statistics.median(ratios)
        goals["ratio"] = round(ratio, 3)
        goals["round_ratios"] = [round(r, 3) for r in ratios]
        goals["ratio_met"] = ratio >= GOAL_RATIO
        missed |= not goals["ratio_met"]
        each = f" (median of rounds: {', '.join(f'{r:.3f}' for r in ratios)})" if len(ratios) > 1 else ""
        verdict = "met" if goals["ratio_met"] else "MISSED"
        print(f"\nratio app/ceiling: {ratio:.3f}{each}  (goal >= {GOAL_RATIO}: {verdict})")
    for target in args.targets:
        p99 = statistics.median(r.load.p99_ms for r in results if r.target == target)
        met = p99 <= GOAL_P99_MS
        goals[f"{target}_p99_ms"] = round(p99, 1)
        goals[f"{target}_p99_met"] = met
        missed |= target == "app" and not met
        label = "median p99" if args.rounds > 1 else "p99"
        print(f"{target} {label}: {p99:.1f} ms  (goal <= {GOAL_P99_MS:g} ms: {'met' if met else 'MISSED'})")
    for r in results:
        ok = r.load.requests - r.load.non_2xx
        # Each connection may leave one request in flight at the deadline: stored, not counted.
        if not 0 <= r.rows_written - ok <= args.concurrency:
            print(f"warning: {r.target}: {ok} 2xx responses but {r.rows_written} screenings written")
        if r.cpu_cores["loader"] > 0.5:
            print(f"warning: the loader used {r.cpu_cores['loader']:.2f} cores on {r.target}: it may be the bottleneck")
        if r.cpu_cores["other"] > 0.25:
            print(
                f"warning: other processes used {r.cpu_cores['other']:.2f} cores during {r.target}: "
                "its figures are not clean"
            )
        if r.load.errors:
            print(f"warning: {r.target}: {r.load.errors} errors; server log tail in {args.output}")

    report = {
        "benchmark": "intake",
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "config": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "pool_size": args.pool_size,
            "database": db_name,
            "broker": "filesystem" if args.no_redis else args.redis_url,
            "app_log_level": args.log_level,
            "loader": loader,
            "server": f"uvicorn --workers 1 --loop {loop} --http {http}",
        },
        "targets": {
            f"{r.target}#{r.round}" if args.rounds > 1 else r.target: {
                "url_path": urlsplit(r.url).path,
                **asdict(r.load),
                "errors": r.load.errors,
                "cpu_cores": r.cpu_cores,
                "server_cpu_ms_per_request": server_ms_per_request(r),
                "rows_written": r.rows_written,
                "warmup": asdict(r.warmup) if r.warmup else None,
                **r.extra,
            }
            for r in results
        },
        "goals": goals,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten: {args.output}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        stop_all_children()
        sys.exit(130)
