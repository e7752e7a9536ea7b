"""Throughput and latency of `POST /api/intake` on PostgreSQL, against a raw-asyncpg ceiling.

What a clinic's server does: the database already holds --leads (200,000) leads with their
screenings and consents (seeded once with COPY by bench/leads.py's seeder, then reused; what a run
adds is deleted at the start of the next, and at its end; never truncated between targets).
Two HTTP servers, each one uvicorn process with one worker, are loaded in turn:

* app: the service itself (`intake.cli:served_app`, what `intake serve` runs), as production runs
  it: INTAKE_ENV=production, JSON logs at INFO, Redis as the Celery broker (no Celery worker runs),
  and the per-client rate limit ON at its default (10 submissions a minute per client address).
* ceiling: a bare Litestar app defined in this file. Its one POST endpoint decodes the same JSON
  body with msgspec and runs the app's own submission statement (imported from
  intake/leads/store.py's `submission_sql`, named in `app_submission_statement` only) on a raw asyncpg
  pool: no SQLAlchemy, no validation, no scoring, no broker, no rate limit.

Both servers sit behind a "reverse proxy": uvicorn gets --proxy-headers --forwarded-allow-ips
127.0.0.1 (and FORWARDED_ALLOW_IPS=127.0.0.1 in the environment), and every request names its
client in X-Forwarded-For, from a pool of --client-addresses addresses in 10.0.0.0/8 used in turn
(header values only), so that no client goes over the rate limit: a run with any 429 is invalid.

The load comes from a separate process: wrk with a Lua script when wrk is installed, else a
Python asyncio loader. It keeps --concurrency keep-alive connections busy. Every request is a
valid submission; one in five comes from a returning person (the email of a seeded lead, so the
statement's update branch runs), the others from a new person (new email, new phone); about one
in ten is an emergency. After a warm-up, ANALYZE and a 2 s re-warm, each target runs --duration.

Printed per round: req/s, p50 and p99, non-2xx (and 429s), the CPU of the benchmark's own
processes (the server under test, its PostgreSQL backends, the loader) and of other work (Redis,
other databases' backends, anything else on the machine). Then, against the goals (ratio
app/ceiling >= 0.5, app p99 <= 50 ms): the ratio as the median of the rounds' ratios and the
worst round's; the p99 pooled over every response of all rounds (from the loaders' latency
histograms), the worst round's p99 and the median of the rounds' p99s. Written to
bench/results/intake.json.

    python bench/intake.py                       # about three minutes (3 rounds), after a seed of ~1 min
    python bench/intake.py --leads 5000 --duration 3 --warmup 1 --rounds 1   # a smoke run
    python bench/intake.py --duration 60 --targets app --py-spy   # profile the app under load

The database named in --database-url must have "bench" in its name. The Redis DB of --redis-url
is flushed before and after. To benchmark another checkout of the code, put it first on
PYTHONPATH: the servers and the migration import `intake` from there (the output names the path).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import fcntl
import importlib.util
import json
import math
import os
import platform
import random
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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

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

from bench.support import (  # noqa: E402 - after the path is set
    OTHER_WORK,
    CpuMeter,
    Profiler,
    asyncpg_dsn,
    check_bench_database,
    children_cpu,
    database_exists,
    database_name,
    descendants,
    drop_database,
    free_port,
    histogram_percentile,
    postgres_backends,
    recreate_database,
    sqlalchemy_url,
    stop_process,
)

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
# Florida area codes the seeded leads do not use (bench/leads.py: 561, 954, 754, 305, 786): a new
# person's phone is nobody's on file, and each loader run starts at its own place among the
# 4 x 8,000,000 numbers, so a new person is never found by the phone of an earlier run's.
AREA_CODES = (239, 407, 727, 813)
PHONES = len(AREA_CODES) * 8_000_000
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


RETURNING_EVERY = 5
"""One submission in this many comes from a returning person: the email of a lead already stored."""
ADDRESS_SPACE = 1 << 24
"""Client addresses are drawn from 10.0.0.0/8: X-Forwarded-For values only, nothing connects to them."""


@dataclass(frozen=True)
class Traffic:
    """What a loader run sends, beyond the bodies: who returns, and from which client addresses."""

    prefix: str
    returning: list[str]
    """Emails of stored leads; request n with n % RETURNING_EVERY == RETURNING_EVERY - 1 uses one."""
    returning_offset: int
    address_offset: int
    addresses: int
    phone_offset: int
    """Size of the address pool, used round-robin from `address_offset`."""


def client_address(traffic: Traffic, n: int) -> str:
    k = (traffic.address_offset + n % traffic.addresses) % ADDRESS_SPACE
    return f"10.{k >> 16}.{(k >> 8) & 255}.{k & 255}"


def make_body(templates: list[list[str]], traffic: Traffic, n: int) -> bytes:
    """Request `n` of a run: the same body the Lua script builds for that number."""
    parts = templates[n % len(templates)]
    if traffic.returning and n % RETURNING_EVERY == RETURNING_EVERY - 1:
        email = traffic.returning[(traffic.returning_offset + n // RETURNING_EVERY) % len(traffic.returning)]
    else:
        email = f"p{traffic.prefix}.{n}@example.com"
    if len(parts) == 2:
        return (parts[0] + email + parts[1]).encode()
    m = (traffic.phone_offset + n) % PHONES
    area = AREA_CODES[m // 8_000_000]
    phone = f"({area}) {200 + (m // 10_000) % 800:03d}-{m % 10_000:04d}"
    return (parts[0] + email + parts[1] + phone + parts[2]).encode()


# ---------------------------------------------------------------------------------------------
# The ceiling: the app's own submission statement on raw asyncpg, served by its own uvicorn process.
# ---------------------------------------------------------------------------------------------


def app_submission_statement() -> tuple[str, Callable[[tuple[dict[str, Any], ...]], list[Any]]]:
    """The app's one statement of a submission, compiled for asyncpg: its SQL, and its $n values
    from the (lead, screening, outbox, consent) rows: `intake.leads.store.submission_sql`, the very
    statement `write_submission` runs (compiled once, cached)."""
    from intake.leads.store import SubmissionRows, submission_sql

    sample = SubmissionRows(*_ceiling_rows(_SAMPLE_BODY))
    statement = submission_sql(sample)

    def values_of(rows: tuple[dict[str, Any], ...]) -> list[Any]:
        return statement.args(SubmissionRows(*rows))

    return statement.sql, values_of


_EMERGENCY_FLAGS = ("bladder_bowel", "saddle_numbness", "chest_abdomen")
_SAMPLE_BODY: dict[str, Any] = {
    "language": "en",
    "contact": {"first_name": "A", "last_name": "B", "email": "a@example.com", "preferred_contact": "email"}
    | {"location": "virtual"},
    "consent": {"privacy": True},
    "answers": {},
}


def _ceiling_rows(data: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """The rows the app writes for a submission, with the keys intake/leads/submission.py gives them,
    but no validation and no scoring: an emergency flag or not decides the tier."""
    from uuid_utils.compat import uuid7 as new_id  # the app's ids: UUIDv7, time-ordered

    contact, consent, answers = data["contact"], data["consent"], data["answers"]
    email = contact["email"].strip().lower()
    raw_phone = contact.get("phone")
    phone = "+1" + "".join(c for c in raw_phone if c.isdigit()) if raw_phone else None
    emergency = any(answers.get(flag) for flag in _EMERGENCY_FLAGS)
    tier, rank, route, score = (
        ("emergency", 0, "seek_care_now", 85) if emergency else ("routine", 3, "book_consultation", 6)
    )
    reasons = [{"code": "bladder_bowel", "tier": tier, "text": "Seek care now."}] if emergency else []
    now = dt.datetime.now(dt.UTC)
    language = data["language"]
    screening_id = new_id()
    lead = {
        "id": new_id(),
        "created_at": now,
        "status": "new",
        "first_name": contact["first_name"],
        "last_name": contact["last_name"],
        "email": email,
        "phone": phone,
        "preferred_contact": contact["preferred_contact"],
        "location": contact["location"],
        "zip": contact.get("zip"),
        "language": language,
        "search_text": f"{contact['first_name']} {contact['last_name']} {email} {(phone or '')[1:]}".lower()[:500],
        "tier": tier,
        "tier_rank": rank,
        "route": route,
        "score": score,
        "urgency": rank * 200 + (100 - score),
        "last_screened_at": now,
        "updated_at": now,
    }
    screening = {
        "id": screening_id,
        "created_at": now,
        "language": language,
        "answers": answers,
        "rule_set_version": "2026-11.1",
        "tier": tier,
        "route": route,
        "score": score,
        "reasons": reasons,
        "rescored_from_id": None,
    }
    outbox = {
        "id": new_id(),
        "created_at": now,
        "topic": "route_screening",
        "ref_id": screening_id,
        "queue": "alerts" if emergency else "intake",
        "publish_count": 0,
    }
    consent_row = {
        "id": new_id(),
        "created_at": now,
        "screening_id": screening_id,
        "privacy_notice_version": "2026-11-01",
        "privacy_accepted_at": now,
        "email_followup": bool(consent.get("email_followup")),
        "sms": bool(consent.get("sms")),
    }
    return lead, screening, outbox, consent_row


def _check_ceiling_rows() -> None:
    """Refuse to start when the schema has a required column the ceiling's rows leave out."""
    from intake.db.models import Consent, Lead, OutboxMessage, Screening

    given = dict(zip(("leads", "screenings", "outbox_messages", "consents"), _ceiling_rows(_SAMPLE_BODY), strict=True))
    given["screenings"] = {**given["screenings"], "lead_id": None}
    given["consents"] = {**given["consents"], "lead_id": None}
    missing = [
        f"{model.__table__.name}.{column.name}"
        for model in (Lead, Screening, OutboxMessage, Consent)
        for column in model.__table__.columns
        if not column.nullable
        and column.server_default is None
        and column.default is None
        and column.name not in given[model.__table__.name]
    ]
    if missing:
        raise RuntimeError(f"the ceiling does not write required column(s) {', '.join(missing)}: update it")


def create_ceiling_app() -> Litestar:
    """uvicorn factory of the ceiling (env: BENCH_CEILING_DSN, BENCH_CEILING_POOL_SIZE)."""
    dsn = os.environ["BENCH_CEILING_DSN"]
    pool_size = int(os.environ.get("BENCH_CEILING_POOL_SIZE", "20"))
    _check_ceiling_rows()
    sql, values_of = app_submission_statement()
    state: dict[str, Any] = {}
    encode = msgspec.json.encode

    async def open_pool(_: Litestar) -> None:
        state["pool"] = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)

    async def close_pool(_: Litestar) -> None:
        await state["pool"].close()

    @get("/health", sync_to_thread=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @post(CEILING_PATH, status_code=201)
    async def submit(request: Request[Any, Any, Any]) -> Response[bytes]:
        rows = _ceiling_rows(msgspec.json.decode(await request.body()))
        async with state["pool"].acquire() as con:
            lead_id = await con.fetchval(sql, *values_of(rows))
        screening = rows[1]
        body = encode(
            {"lead_id": str(lead_id), "screening_id": str(screening["id"]), "tier": screening["tier"]}
            | {"route": screening["route"]}
        )
        return Response(body, status_code=201, media_type="application/json")

    return Litestar(route_handlers=[health, submit], on_startup=[open_pool], on_shutdown=[close_pool], debug=False)


# ---------------------------------------------------------------------------------------------
# Load generators: wrk + Lua, or a Python asyncio loader in a child process.
# ---------------------------------------------------------------------------------------------

BUCKET_US = 10
"""Latencies are kept as a histogram of 10 µs buckets, so rounds can be pooled exactly enough."""


@dataclass
class LoadResult:
    requests: int
    """Completed responses (any status)."""
    non_2xx: int
    too_many: int
    """429 answers (the per-client rate limit): a run with any is not a valid measurement."""
    socket_errors: int
    elapsed_s: float
    rps: float
    """2xx responses per second."""
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    histogram: dict[int, int] = field(default_factory=dict, repr=False)
    """Latency in µs (bucket floor) -> responses."""

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "histogram"}


def load_result(raw: dict[str, Any]) -> LoadResult:
    """A loader's BENCHJSON line (both loaders print the same fields) as a LoadResult."""
    histogram = {int(k): int(v) for k, v in raw["histogram"].items()}
    # wrk also records the latency of responses that arrive as it stops, which its request count leaves out:
    # the histogram may hold a few more. A histogram far from the count would mean it was read wrong.
    recorded = sum(histogram.values())
    if not raw["requests"] <= recorded <= raw["requests"] * 1.1 + 64:
        raise RuntimeError(f"the loader's histogram holds {recorded} of {raw['requests']} responses")
    elapsed = raw["elapsed_s"]
    ok = raw["requests"] - raw["non_2xx"]

    def ms(q: float) -> float:
        return round(histogram_percentile(histogram, q) / 1000, 3) if histogram else 0.0

    return LoadResult(
        requests=raw["requests"],
        non_2xx=raw["non_2xx"],
        too_many=raw["too_many"],
        socket_errors=raw["socket_errors"],
        elapsed_s=round(elapsed, 3),
        rps=round(ok / elapsed, 1) if elapsed > 0 else 0.0,
        p50_ms=ms(50),
        p90_ms=ms(90),
        p99_ms=ms(99),
        max_ms=round(raw["max_us"] / 1000, 3),
        mean_ms=round(raw["mean_us"] / 1000, 3),
        histogram=histogram,
    )


_LUA = r"""
-- Generated by bench/intake.py: a valid submission per request, a new person's or a returning one's,
-- from its own client address (X-Forwarded-For); counts 429s; prints a latency histogram.
local variants = {
%(variants)s
}
local returning = {
%(returning)s
}
local areas = {%(areas)s}
local path = "%(path)s"
local every = %(every)d
local bucket = %(bucket)d
local prefix, nthreads, roffset, aoffset, addresses, poffset = "x", 1, 0, 0, 1, 0
local counter = 0
too_many = 0  -- a global: done() reads each thread's count with thread:get, which sees globals only
local next_id = 0
local threads = {}

function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  prefix = args[1]
  nthreads = tonumber(args[2])
  roffset = tonumber(args[3])
  aoffset = tonumber(args[4])
  addresses = tonumber(args[5])
  poffset = tonumber(args[6])
end

function request()
  local n = counter * nthreads + thread_id
  counter = counter + 1
  local v = variants[(n %% #variants) + 1]
  local email
  if #returning > 0 and n %% every == every - 1 then
    email = returning[((roffset + math.floor(n / every)) %% #returning) + 1]
  else
    email = "p" .. prefix .. "." .. string.format("%%d", n) .. "@example.com"
  end
  local body
  if #v == 2 then
    body = v[1] .. email .. v[2]
  else
    local m = (poffset + n) %% (#areas * 8000000)
    local area = areas[math.floor(m / 8000000) + 1]
    local phone = string.format("(%%d) %%03d-%%04d", area, 200 + math.floor(m / 10000) %% 800, m %% 10000)
    body = v[1] .. email .. v[2] .. phone .. v[3]
  end
  local k = (aoffset + n %% addresses) %% 16777216
  local address = string.format("10.%%d.%%d.%%d", math.floor(k / 65536), math.floor(k / 256) %% 256, k %% 256)
  local headers = {["Content-Type"] = "application/json", ["X-Forwarded-For"] = address}
  return wrk.format("POST", path, headers, body)
end

function response(status, headers, body)
  if status == 429 then
    too_many = too_many + 1
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local n429 = 0
  for _, thread in ipairs(threads) do
    n429 = n429 + thread:get("too_many")
  end
  local parts = {}
  local current, count = -1, 0
  -- latency(i): the i-th distinct recorded value (microseconds) and its count, in ascending order. Past the
  -- end the value is 0 (and the count is not to be trusted).
  local i, last = 1, -1
  while true do
    local us, c = latency(i)
    if us == nil or us <= last or c == nil or c == 0 then break end
    last = us
    local b = math.floor(us / bucket) * bucket
    if b ~= current then
      if count > 0 then table.insert(parts, string.format('"%%d":%%d', current, count)) end
      current, count = b, 0
    end
    count = count + c
    i = i + 1
  end
  if count > 0 then table.insert(parts, string.format('"%%d":%%d', current, count)) end
  io.write(string.format(
    'BENCHJSON {"requests":%%d,"elapsed_s":%%f,"socket_errors":%%d,"non_2xx":%%d,"too_many":%%d,' ..
    '"max_us":%%d,"mean_us":%%.1f,"histogram":{%%s}}\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout, e.status, n429,
    latency.max, latency.mean, table.concat(parts, ",")))
end
"""


def write_lua(path: Path, url_path: str, templates: list[list[str]], returning: list[str]) -> None:
    def lua_string(text: str) -> str:
        assert "]==]" not in text
        return f"[==[{text}]==]"

    variants = ",\n".join("  {" + ", ".join(lua_string(p) for p in parts) + "}" for parts in templates)
    path.write_text(
        _LUA
        % {
            "variants": variants,
            "returning": ",\n".join(f"  {lua_string(e)}" for e in returning),
            "areas": ", ".join(map(str, AREA_CODES)),
            "path": url_path,
            "every": RETURNING_EVERY,
            "bucket": BUCKET_US,
        }
    )


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0] if first else "wrk"


def run_wrk(
    wrk: str, script: Path, url: str, duration: float, concurrency: int, threads: int, traffic: Traffic
) -> LoadResult:
    argv = [wrk, f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--timeout", "30s"]
    argv += ["-s", str(script), url, "--", traffic.prefix, str(threads), str(traffic.returning_offset)]
    argv += [str(traffic.address_offset), str(traffic.addresses), str(traffic.phone_offset)]
    out = run_child(argv, timeout=duration + 60)
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    return load_result(json.loads(line.removeprefix("BENCHJSON ")))


async def _python_load(
    host: str, port: int, path: str, duration: float, concurrency: int, traffic: dict[str, Any]
) -> dict[str, Any]:
    templates = body_templates()
    plan = Traffic(**traffic)
    histogram: dict[int, int] = {}
    counts = {"non_2xx": 0, "too_many": 0, "socket_errors": 0, "requests": 0}
    total_us = 0
    max_us = 0
    next_n = 0
    started = time.perf_counter()
    deadline = started + duration
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"

    async def connection() -> None:
        nonlocal next_n, total_us, max_us
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while time.perf_counter() < deadline:
            try:
                if writer is None or reader is None:
                    reader, writer = await asyncio.open_connection(host, port)
                n = next_n
                next_n += 1
                body = make_body(templates, plan, n)
                request = f"{head}X-Forwarded-For: {client_address(plan, n)}\r\nContent-Length: {len(body)}\r\n\r\n"
                t0 = time.perf_counter_ns()
                writer.write(request.encode() + body)
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
                us = (time.perf_counter_ns() - t0) // 1000
                bucket = us // BUCKET_US * BUCKET_US
                histogram[bucket] = histogram.get(bucket, 0) + 1
                total_us += us
                max_us = max(max_us, us)
                counts["requests"] += 1
                if not 200 <= status < 300:
                    counts["non_2xx"] += 1
                    counts["too_many"] += status == 429
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
    return {
        **counts,
        "elapsed_s": time.perf_counter() - started,
        "max_us": max_us,
        "mean_us": total_us / counts["requests"] if counts["requests"] else 0.0,
        "histogram": {str(k): v for k, v in sorted(histogram.items())},
    }


def python_loader_child(config_path: str) -> None:
    """Entry of the child process that runs the Python loader; prints one BENCHJSON line."""
    config = json.loads(Path(config_path).read_text())
    if importlib.util.find_spec("uvloop"):
        import uvloop

        uvloop.install()
    result = asyncio.run(_python_load(**config))
    print("BENCHJSON " + json.dumps(result), flush=True)


def run_python_loader(url: str, duration: float, concurrency: int, traffic: Traffic, workdir: Path) -> LoadResult:
    parts = urlsplit(url)
    config = {
        "host": parts.hostname,
        "port": parts.port,
        "path": parts.path,
        "duration": duration,
        "concurrency": concurrency,
        "traffic": asdict(traffic),
    }
    config_path = workdir / f"loader-{traffic.prefix}.json"
    config_path.write_text(json.dumps(config))
    out = run_child(
        [sys.executable, str(Path(__file__).resolve()), "--loader-child", str(config_path)],
        timeout=duration + 60,
    )
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"the Python loader printed no result:\n{out}")
    return load_result(json.loads(line.removeprefix("BENCHJSON ")))


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
# The database: a clinic's, with history. Seeded once (bench/leads.py's COPY seeder), then reused.
# ---------------------------------------------------------------------------------------------


async def _db(dsn: str, *statements: str) -> list[Any]:
    con: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        return [
            await con.fetchval(s) if s.lstrip().upper().startswith("SELECT") else await con.execute(s)
            for s in statements
        ]
    finally:
        await con.close()


async def _seed_info(dsn: str) -> dict[str, Any] | None:
    """What bench/leads.py's seeder wrote on `leads` (its mark), whatever rows came since."""
    from bench.leads import SEED_MARK

    comment = (await _db(dsn, "SELECT obj_description('leads'::regclass, 'pg_class')"))[0]
    if not comment or not comment.startswith(SEED_MARK + " "):
        return None
    info: dict[str, Any] = json.loads(comment[len(SEED_MARK) + 1 :])
    return info


async def _trim_to_seed(dsn: str, seeded_at: str) -> dict[str, int]:
    """Delete what earlier runs added after the seed (submissions, and the leads they created).

    A returning person's lead keeps the details the run gave it: that is what a clinic's leads do.
    """
    con: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        since = dt.datetime.fromisoformat(seeded_at)
        removed = {}
        async with con.transaction():
            # Without the foreign-key triggers: every row these four tables gained since the seed goes, so
            # nothing is left dangling, and each deleted screening would otherwise scan the whole table for
            # rows re-scored from it (`rescored_from_id` has no index: the app never deletes screenings).
            await con.execute("SET LOCAL session_replication_role = replica")
            for table in ("consents", "outbox_messages", "screenings", "leads"):
                status = await con.execute(f"DELETE FROM {table} WHERE created_at > $1", since)
                removed[table] = int(status.split()[-1])
        if any(removed.values()):
            await con.execute("VACUUM ANALYZE leads, screenings, consents, outbox_messages")
        return removed
    finally:
        await con.close()


def prepare_database(
    app_url: str, dsn: str, leads: int, seed_value: int, reseed: bool, env: dict[str, str], cwd: Path
) -> dict[str, Any]:
    """A migrated database holding `leads` seeded leads with their screenings and consents, and
    nothing a former run added: reused when bench/leads.py's seed mark says so, else seeded anew."""
    from bench.leads import seed as seed_leads

    name = database_name(app_url)
    if not reseed and database_exists(app_url):
        migrate(app_url, env, cwd)
        info = asyncio.run(_seed_info(dsn))
        if info is not None and info.get("leads") == leads:
            removed = asyncio.run(_trim_to_seed(dsn, info["seeded_at"]))
            count = int(asyncio.run(_db(dsn, "SELECT count(*) FROM leads"))[0])
            if count == leads:
                gone = ", ".join(f"{n:,} {t}" for t, n in removed.items() if n) or "nothing"
                print(f"  database {name}: reusing the seed of {info['seeded_at']} ({leads:,} leads); removed {gone}")
                return {**info, "reused": True, "removed": removed}
        print(f"  database {name}: no complete seed of {leads:,} leads in it: seeding anew")
    print(f"  database {name}: (re)creating, migrating, seeding {leads:,} leads with screenings (COPY)", flush=True)
    recreate_database(app_url)
    migrate(app_url, env, cwd)
    info = asyncio.run(seed_leads(app_url, leads, seed_value))
    return {**info, "reused": False}


def returning_emails(dsn: str, count: int, seed_value: int) -> list[str]:
    """`count` emails of seeded leads, in a fixed random order: the returning people."""

    async def pick() -> list[str]:
        con: asyncpg.Connection = await asyncpg.connect(dsn)
        try:
            await con.execute(f"SELECT setseed({(seed_value % 1000) / 1000})")
            rows = await con.fetch("SELECT email FROM leads ORDER BY random() LIMIT $1", count)
            return [r["email"] for r in rows]
        finally:
            await con.close()

    return asyncio.run(pick())


_REPLAN_SECONDS = 2.0


def analyze(dsn: str) -> None:
    """Fresh statistics after the warm-up's rows, then every server connection re-plans.

    The re-warm that follows lets the connections re-plan their prepared statements before the
    measured run, so that no measured request waits for it.
    """
    asyncio.run(_db(dsn, "ANALYZE leads, screenings, consents, outbox_messages"))


def screening_count(dsn: str) -> int:
    return int(asyncio.run(_db(dsn, "SELECT count(*) FROM screenings"))[0])


def lead_count(dsn: str) -> int:
    return int(asyncio.run(_db(dsn, "SELECT count(*) FROM leads"))[0])


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
    leads_added: int
    """New leads among the rows written: the rest updated a returning person's lead."""
    extra: dict[str, Any] = field(default_factory=dict)
    round: int = 1


def app_factory(code_root: Path) -> str:
    """What `intake serve` hands uvicorn in that checkout: `intake.cli:served_app` (the app with the serving
    process's GC tuning), or `intake.app:create_app` in checkouts from before it."""
    cli = code_root / "intake" / "cli.py"
    served = cli.exists() and "def served_app(" in cli.read_text()
    return "intake.cli:served_app" if served else "intake.app:create_app"


def uvicorn_argv(factory: str, port: int, app_dir: Path | None, loop: str, http: str) -> list[str]:
    argv = [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", "1", "--no-access-log", "--log-level", "warning", "--loop", loop, "--http", http]
    # Behind the clinic's reverse proxy: the client is the one X-Forwarded-For names (said
    # explicitly, not left to uvicorn's default).
    argv += ["--proxy-headers", "--forwarded-allow-ips", FORWARDED_ALLOW_IPS]
    if app_dir is not None:
        argv += ["--app-dir", str(app_dir)]
    return argv


FORWARDED_ALLOW_IPS = "127.0.0.1"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python bench/intake.py",
        description="Load POST /api/intake and a raw-asyncpg ceiling (the app's own statement) on a PostgreSQL "
        "database holding a clinic's history; print req/s, p50, p99 (pooled, worst round, median of rounds).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds per target and round")
    p.add_argument("--rounds", type=int, default=3, help="rounds, each running every target in turn")
    p.add_argument("--warmup", type=float, default=5.0, help="warm-up seconds per target (not measured)")
    p.add_argument("--concurrency", type=int, default=32, help="keep-alive connections kept busy")
    p.add_argument(
        "--database-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/intake_bench",
        help="benchmark database (name must contain 'bench'): seeded once and reused; what a run adds is "
        "deleted at the start of the next",
    )
    p.add_argument("--leads", type=int, default=200_000, help="leads (each with a screening) the database holds")
    p.add_argument("--seed", type=int, default=20261124, help="random seed of the seeded data")
    p.add_argument("--reseed", action="store_true", help="drop and seed the database even if it holds the seed")
    p.add_argument("--drop-db", action="store_true", help="drop the database at the end (next run seeds again)")
    p.add_argument(
        "--returning-pool", type=int, default=20_000, help="seeded leads whose emails the returning people use"
    )
    p.add_argument(
        "--client-addresses",
        type=int,
        default=1 << 20,
        help="client addresses (10.0.0.0/8, sent as X-Forwarded-For) used in turn; at least req/s * 60 / 10 "
        "keeps every client under the rate limit of 10 a minute",
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
    p.add_argument(
        "--py-spy",
        nargs="?",
        const="py-spy",
        metavar="PATH",
        help="record each server's stacks while it holds the GIL (its CPU) with py-spy, collapsed format, "
        "next to --output",
    )
    p.add_argument("--output", type=Path, default=RESULTS, help="JSON result file")
    p.add_argument("--check", action="store_true", help="exit 1 when a goal is missed (or any request got a 429)")
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


@dataclass
class Plan:
    """What every load of the run shares."""

    args: argparse.Namespace
    wrk: str | None
    run_id: str
    workdir: Path
    returning: list[str]
    loads: int = 0

    def traffic(self, tag: str) -> Traffic:
        """A new loader run's traffic: fresh emails, and addresses not used by the run before it."""
        self.loads += 1
        rng = random.Random(f"{self.run_id}{tag}{self.loads}")
        return Traffic(
            prefix=f"{self.run_id}{tag}{self.loads}",
            returning=self.returning,
            returning_offset=rng.randrange(max(1, len(self.returning))),
            address_offset=rng.randrange(ADDRESS_SPACE),
            addresses=self.args.client_addresses,
            phone_offset=rng.randrange(PHONES),
        )


def load(plan: Plan, script: Path | None, url: str, seconds: float, tag: str) -> LoadResult:
    args = plan.args
    traffic = plan.traffic(tag)
    if plan.wrk is not None and script is not None:
        return run_wrk(plan.wrk, script, url, seconds, args.concurrency, args.wrk_threads, traffic)
    return run_python_loader(url, seconds, args.concurrency, traffic, plan.workdir)


def run_target(name: str, plan: Plan, server: Server, url: str, dsn: str, script: Path | None) -> TargetResult:
    args = plan.args
    db_name = database_name(dsn)
    if not args.no_redis:
        flush_redis(args.redis_url)
    print(f"  {name}: starting uvicorn on :{server.port}", flush=True)
    server.start()
    try:
        warm = None
        if args.warmup > 0:
            print(f"  {name}: warm-up {args.warmup:g}s", flush=True)
            warm = load(plan, script, url, args.warmup, f"{name[0]}w")
            settle(dsn)
            analyze(dsn)
            # ANALYZE made every connection re-plan its statements: let them, before measuring.
            load(plan, script, url, _REPLAN_SECONDS, f"{name[0]}r")
        print(f"  {name}: measuring {args.duration:g}s at concurrency {args.concurrency}", flush=True)
        rows_before = settle(dsn)
        leads_before = lead_count(dsn)
        extra: dict[str, Any] = {}
        # Ours: the server under test, its PostgreSQL backends, the loader (a child that has exited
        # by the second reading). Redis, other databases' backends and everything else: other work.
        meter = CpuMeter(
            {
                "server": lambda: [server.pid, *descendants(server.pid)],
                "postgres": lambda: postgres_backends(db_name),
            },
            {"loader": children_cpu},
        )
        profiler = Profiler(args.output.parent / "profiles" if args.py_spy else None, args.py_spy, 200, False)
        with profiler.record(f"intake-{name}", server.pid, "--gil") as profile:
            before = meter.read()
            result = load(plan, script, url, args.duration, f"{name[0]}m")
            cpu = CpuMeter.cores(before, meter.read())
        if profile is not None:
            extra["py_spy"] = str(profile)
        rows = settle(dsn) - rows_before
        leads_added = lead_count(dsn) - leads_before
    finally:
        server.stop()
    if result.errors:
        extra["server_log_tail"] = server.log.read_text(errors="replace")[-2000:]
    return TargetResult(name, url, result, warm, cpu, rows, leads_added, extra)


def server_ms_per_request(r: TargetResult) -> float:
    """The server process's CPU time per 2xx response: what a request costs, whatever else runs."""
    return round(r.cpu_cores["server"] / r.load.rps * 1000, 2) if r.load.rps else 0.0


def print_table(results: list[TargetResult]) -> None:
    head = f"{'target':<11}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'429':>6}{'sock err':>9}"
    head += f"{'cpu ms/req':>12}   cores: server / postgres (ours) / loader / other work (busy of N)"
    print(head)
    print("-" * len(head))
    for r in results:
        c = r.cpu_cores
        name = f"{r.target}#{r.round}"
        print(
            f"{name:<11}{r.load.rps:>9.1f}{r.load.p50_ms:>9.1f}{r.load.p99_ms:>9.1f}{r.load.non_2xx:>9}"
            f"{r.load.too_many:>6}{r.load.socket_errors:>9}{server_ms_per_request(r):>12.2f}"
            f"   {c['server']:.2f} / {c['postgres']:.2f} / {c['loader']:.2f} / {c[OTHER_WORK]:.2f}"
            f" ({c['machine']:.2f} of {os.cpu_count()})"
        )


def pooled(results: list[TargetResult]) -> dict[str, int]:
    histogram: dict[int, int] = {}
    for r in results:
        for us, count in r.load.histogram.items():
            histogram[us] = histogram.get(us, 0) + count
    return histogram


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def goals_of(results: list[TargetResult], args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """Print and return the goals: ratio (median and worst round), p99 (pooled, worst round, median)."""
    goals: dict[str, Any] = {"ratio_min": GOAL_RATIO, "p99_max_ms": GOAL_P99_MS}
    missed = False
    rounds = [{r.target: r for r in results if r.round == n} for n in range(1, args.rounds + 1)]
    ratios = [
        one["app"].load.rps / one["ceiling"].load.rps
        for one in rounds
        if "app" in one and "ceiling" in one and one["ceiling"].load.rps > 0
    ]
    if ratios:
        median, worst = statistics.median(ratios), min(ratios)
        goals |= {"ratio_median": round(median, 3), "ratio_worst": round(worst, 3)}
        goals |= {"round_ratios": [round(r, 3) for r in ratios], "ratio_met": median >= GOAL_RATIO}
        goals["ratio_worst_met"] = worst >= GOAL_RATIO
        missed |= not goals["ratio_met"]
        print(
            f"\nratio app/ceiling: median of rounds {median:.3f} ({verdict(median >= GOAL_RATIO)}), worst round "
            f"{worst:.3f} ({verdict(worst >= GOAL_RATIO)})  [goal >= {GOAL_RATIO}; rounds: "
            f"{', '.join(f'{r:.3f}' for r in ratios)}]"
        )
    for target in args.targets:
        mine = [r for r in results if r.target == target]
        p99s = [r.load.p99_ms for r in mine]
        histogram = pooled(mine)
        pooled_p99 = histogram_percentile(histogram, 99) / 1000 if histogram else math.nan
        pooled_p50 = histogram_percentile(histogram, 50) / 1000 if histogram else math.nan
        median, worst = statistics.median(p99s), max(p99s)
        goals[f"{target}_p99_pooled_ms"] = round(pooled_p99, 1)
        goals[f"{target}_p50_pooled_ms"] = round(pooled_p50, 1)
        goals[f"{target}_p99_worst_round_ms"] = round(worst, 1)
        goals[f"{target}_p99_median_of_rounds_ms"] = round(median, 1)
        goals[f"{target}_p99_met"] = met = pooled_p99 <= GOAL_P99_MS
        goals[f"{target}_p99_worst_round_met"] = worst <= GOAL_P99_MS
        if target == "app":
            missed |= not met
        print(
            f"{target} p99: pooled over {sum(histogram.values()):,} responses of {len(mine)} round(s) "
            f"{pooled_p99:.1f} ms ({verdict(met)}), worst round {worst:.1f} ms ({verdict(worst <= GOAL_P99_MS)}), "
            f"median of rounds {median:.1f} ms  [goal <= {GOAL_P99_MS:g} ms; pooled p50 {pooled_p50:.1f} ms]"
        )
    return goals, missed


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
    db_name = check_bench_database(args.database_url)
    app_url, dsn = sqlalchemy_url(args.database_url), asyncpg_dsn(args.database_url)

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
    # Two runs on one database would trim and load it under each other.
    lock = (Path(tempfile.gettempdir()) / f"intake-bench-{db_name}.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"another benchmark is running on database {db_name}; wait for it") from None
    run_id = uuid.uuid4().hex[:6]
    workdir = Path(tempfile.mkdtemp(prefix="intake-bench-"))
    results: list[TargetResult] = []
    seed_info: dict[str, Any] = {}
    try:
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "INTAKE_"))}
        base_env["FORWARDED_ALLOW_IPS"] = FORWARDED_ALLOW_IPS
        app_env = {
            **base_env,
            "DATABASE_URL": app_url,
            "DATABASE_POOL_SIZE": str(args.pool_size),
            "INTAKE_DATA_DIR": str(workdir / "data"),
            "PUBLIC_BASE_URL": "http://127.0.0.1",  # required off the embedded default; no link is followed here
            "LOG_LEVEL": args.log_level,
            # As production runs it: JSON logs (INTAKE_ENV=production needs a real JWT secret), the
            # per-client rate limit at its default (INTAKE_RATE_LIMIT_PER_MINUTE unset: 10 a minute).
            "INTAKE_ENV": "production",
            "JWT_SECRET": secrets.token_urlsafe(48),
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
        print(
            f"  servers: uvicorn --workers 1 --loop {loop} --http {http} --forwarded-allow-ips {FORWARDED_ALLOW_IPS}; "
            f"app code from {code_at}"
        )
        print(
            f"  app: INTAKE_ENV=production, LOG_LEVEL={args.log_level}, rate limit 10 a minute per client; broker: "
            f"{'filesystem (embedded)' if args.no_redis else args.redis_url}",
            flush=True,
        )
        seed_info = prepare_database(app_url, dsn, args.leads, args.seed, args.reseed, app_env, workdir)
        returning = returning_emails(dsn, args.returning_pool, args.seed)
        print(
            f"  traffic: 1 in {RETURNING_EVERY} a returning person (emails of {len(returning):,} seeded leads), the "
            f"rest new; clients from {args.client_addresses:,} addresses in 10.0.0.0/8 (X-Forwarded-For), in turn",
            flush=True,
        )
        plan = Plan(args, wrk, run_id, workdir, returning)

        servers: dict[str, tuple[Server, str]] = {}
        for name in args.targets:
            port = free_port()
            if name == "app":
                argv = uvicorn_argv(app_factory(Path(code_root)), port, Path(code_root), loop, http)
                server = Server("app", argv, app_env, workdir, port, workdir / "app.log")
                url = f"http://127.0.0.1:{port}{INTAKE_PATH}"
            else:
                ceiling_env = {
                    **base_env,
                    "PYTHONPATH": app_env["PYTHONPATH"],
                    "BENCH_CEILING_DSN": dsn,
                    "BENCH_CEILING_POOL_SIZE": str(args.pool_size),
                }
                argv = uvicorn_argv("bench.intake:create_ceiling_app", port, ROOT, loop, http)
                server = Server("ceiling", argv, ceiling_env, workdir, port, workdir / "ceiling.log")
                url = f"http://127.0.0.1:{port}{CEILING_PATH}"
            servers[name] = (server, url)

        templates = body_templates()
        # Rounds alternate the targets, so a neighbour's burst on a shared machine hits one round of
        # each rather than all of one target.
        for round_no in range(1, args.rounds + 1):
            for name in args.targets:
                server, url = servers[name]
                script = None
                if wrk is not None:
                    script = workdir / f"{name}.lua"
                    write_lua(script, urlsplit(url).path, templates, returning)
                if args.rounds > 1:
                    print(f"  round {round_no} of {args.rounds}", flush=True)
                result = run_target(name, plan, server, url, dsn, script)
                result.round = round_no
                results.append(result)
    finally:
        stop_all_children()
        if args.drop_db:
            with contextlib.suppress(Exception):
                drop_database(app_url)
        elif seed_info.get("seeded_at"):
            # Back to the seed, so the next run starts from the same database.
            with contextlib.suppress(Exception):
                asyncio.run(_trim_to_seed(dsn, seed_info["seeded_at"]))
        if not args.no_redis:
            with contextlib.suppress(Exception):
                flush_redis(args.redis_url)
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print_table(results)
    goals, missed = goals_of(results, args)
    too_many = sum(r.load.too_many for r in results)
    non_2xx = sum(r.load.non_2xx for r in results)
    goals["non_2xx"], goals["429"] = non_2xx, too_many
    print(
        f"non-2xx responses: {non_2xx} (429: {too_many}); socket errors: {sum(r.load.socket_errors for r in results)}"
    )
    if too_many:
        missed = True
        print("INVALID RUN: the rate limit answered 429: use more --client-addresses")
    written = sum(r.rows_written for r in results)
    if written:
        returned = 1 - sum(r.leads_added for r in results) / written
        print(f"submissions that updated a lead already stored (returning people): {returned:.1%} (sent: 20.0%)")
    busiest = max((r.load.rps for r in results), default=0.0)
    per_address = math.ceil(busiest * 60 / args.client_addresses) if busiest else 0
    print(f"each client address sent at most {per_address} request(s) a minute in a measured run (limit 10)")
    for r in results:
        ok = r.load.requests - r.load.non_2xx
        # Each connection may leave one request in flight at the deadline: stored, not counted.
        if not 0 <= r.rows_written - ok <= args.concurrency:
            print(f"warning: {r.target}#{r.round}: {ok} 2xx responses but {r.rows_written} screenings written")
        if r.cpu_cores["loader"] > 0.5:
            print(f"warning: the loader used {r.cpu_cores['loader']:.2f} cores on {r.target}: it may be the bottleneck")
        if r.cpu_cores[OTHER_WORK] > 0.25:
            print(
                f"warning: other work used {r.cpu_cores[OTHER_WORK]:.2f} cores during {r.target}#{r.round}: "
                "its figures are not clean"
            )
        if r.load.errors:
            print(f"warning: {r.target}#{r.round}: {r.load.errors} errors; server log tail in {args.output}")

    report = {
        "benchmark": "intake",
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "config": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "pool_size": args.pool_size,
            "database": db_name,
            "leads": args.leads,
            "seed": {k: v for k, v in seed_info.items() if k != "timings"},
            "returning_every": RETURNING_EVERY,
            "returning_pool": args.returning_pool,
            "client_addresses": args.client_addresses,
            "rate_limit_per_minute": 10,
            "forwarded_allow_ips": FORWARDED_ALLOW_IPS,
            "broker": "filesystem" if args.no_redis else args.redis_url,
            "app_log_level": args.log_level,
            "loader": loader,
            "server": f"uvicorn --workers 1 --loop {loop} --http {http}",
        },
        "targets": {
            f"{r.target}#{r.round}": {
                "url_path": urlsplit(r.url).path,
                **r.load.summary(),
                "errors": r.load.errors,
                "cpu_cores": r.cpu_cores,
                "server_cpu_ms_per_request": server_ms_per_request(r),
                "rows_written": r.rows_written,
                "leads_added": r.leads_added,
                "warmup": r.warmup.summary() if r.warmup else None,
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
