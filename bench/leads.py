"""Lead lists at scale: p50/p95 server latency of the staff lists over 1,000,000 leads in PostgreSQL.

What it does, from the repository root (`python bench/leads.py`, or `python -m bench.leads`):

1. **Seed** (only when needed): the database of `--database-url` (default `intake_bench_leads`,
   its name must contain "bench") is created and migrated, then filled with `--leads` leads, one
   screening and one consent each, by binary COPY (asyncpg), the secondary indexes of those
   tables dropped during the load and built again after it, then VACUUM ANALYZE. Ids are
   UUIDv7 made from each row's created_at (48-bit milliseconds, 12-bit sub-millisecond fraction,
   random rest), so the tables are in id and time order as in production. A seeded database is
   marked (a comment on `leads`) and reused by the next run; `--reseed` forces a new one.
   The data: created_at over two years (growing, business hours), names with a realistic skew
   plus a long tail of rare surnames, unique emails, 90 % with a phone, tiers 2 % emergency,
   15 % urgent, 33 % soon, 50 % routine; each screening's answers are a random but valid filled
   screen scored by the real rule set, so tier, score (within the tier's band), route and reasons
   agree; urgency = tier_rank * 200 + (100 - score); search_text as `contact.search_text`;
   status from the lead's age (recent leads mostly new, older ones mostly closed or done).
2. **Serve** the real app: one uvicorn process, one worker, started the way `intake serve` does
   (production env, JSON logs). Access lines are kept (LOG_LEVEL=INFO, the production default):
   their `ms`, matched to each request by its X-Request-ID, is the app's handling time after
   authentication (Litestar puts the JWT middleware, which loads the staff member and checks the
   token is not revoked, outside the access-line middleware). GET /health and GET /api/auth/me
   are timed too: the HTTP floor and the HTTP + authentication floor.
3. **Measure** from this process over loopback, one request at a time, httpx keep-alive, after a
   warm-up: the two floors, first pages (urgency, newest), deep pages (urgency, newest), a
   filtered list (status=new, tier=urgent: first and deep), the triage queue (first and deep),
   and a search. No case repeats one request: a deep case starts from --starts (20) cursors
   taken from the walk to --depth (spread over its second half) and from each follows the real
   next_cursor of every response for --follow (10) pages; the search rotates --search-terms (5)
   terms of each of nine kinds that exist in the data (common, mid, uncommon and rare surnames,
   first names, full names, email prefixes, an email's first letters, phone digits), reported
   per kind too. Each list request also writes its
   audit row (lead.list / lead.queue) in the same transaction: that is part of the latency.
   Other processes' CPU use is recorded for every case; a disturbed case is run again once the
   machine is quiet (--quiet-cores, --retries, --quiet-budget), the least disturbed run kept.
4. **Compare** with OFFSET, database only: the same statement LeadQueue builds, once with the
   keyset cursor and once with OFFSET, through asyncpg prepared statements (as the app runs
   them), at depth 10,000 and deeper. The deep pages are checked to be the same rows both ways.
5. **Explain**: EXPLAIN (ANALYZE, BUFFERS) of every list statement (the SQL compiled from
   LeadQueue itself), with this request's values (custom plan) and as a prepared statement
   after five executions (the plan the app's connection ends up with: `$n` in it means generic).
   Written to bench/results/leads-plans.txt.

Targets: p95 <= 20 ms for list pages at any depth, p95 <= 50 ms for search. Results are printed
and written to bench/results/leads.json; `--check` exits 1 when a target is missed.

    python bench/leads.py                    # reuses the seeded database: 1-2 min when quiet
    python bench/leads.py --reseed           # seeds 1,000,000 leads anew first (about 2 min more)
    python bench/leads.py --requests 500 --database-url postgresql+asyncpg://postgres@host/x_bench

The seeded database is kept at the end so the next run starts at once; drop it by hand
(`dropdb intake_bench_leads`). To benchmark another checkout, put it first on PYTHONPATH: this
process and the server both import `intake` from there (the output names the path used).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import dataclasses
import datetime as dt
import gc
import itertools
import json
import math
import os
import platform
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

# Run as a script, this folder comes first on sys.path and bench/intake.py would shadow the
# `intake` package: drop it (the package is imported lazily, inside the functions below).
_HERE = Path(__file__).resolve().parent
if sys.path and sys.path[0] and Path(sys.path[0]).resolve() == _HERE:
    sys.path.pop(0)
ROOT = _HERE.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # the repository, for `bench.support`; PYTHONPATH still comes first

from bench import support  # noqa: E402 - after the path is set
from bench.support import (  # noqa: E402
    asyncpg_dsn,
    database_exists,
    database_name,
    free_port,
    percentile,
    postgres_backends,
    recreate_database,
    stop_process,
)

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/intake_bench_leads"
SEED_MARK = "bench/leads.py seed v1"
BENCH_EMAIL = "bench.leads@example.com"
BENCH_PASSWORD = "bench-leads-password-1"  # a throwaway account of the benchmark database
LIST_TARGET_MS = 20.0
SEARCH_TARGET_MS = 50.0
T = TypeVar("T")
Sort = Literal["urgency", "newest"]
SORTS: tuple[Sort, ...] = ("urgency", "newest")

# --- the seeded data -----------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_NAMES = _words(
    "maria jose james john robert michael william david richard joseph thomas charles christopher daniel "
    "matthew anthony mark donald steven paul andrew joshua kevin brian george timothy edward jason ryan "
    "jacob gary nicholas eric jonathan stephen justin scott brandon benjamin samuel gregory alexander frank "
    "patrick raymond jack dennis tyler aaron adam nathan henry douglas zachary peter kyle mary patricia "
    "jennifer linda elizabeth barbara susan jessica sarah karen lisa nancy betty margaret sandra ashley "
    "kimberly emily donna michelle carol amanda melissa deborah stephanie rebecca sharon laura cynthia "
    "kathleen amy angela anna brenda pamela emma nicole helen samantha katherine christine rachel janet "
    "catherine heather diane julie olivia joyce victoria kelly lauren christina evelyn megan andrea hannah "
    "jacqueline teresa sara madison abigail alice sophia grace denise amber danielle isabella diana natalie "
    "brittany charlotte kayla alexis carlos luis juan jorge miguel pedro alejandro fernando ricardo rafael "
    "ana carmen rosa lucia isabel gabriela sofia valentina camila daniela yolanda beatriz esteban jean "
    "pierre marie nadia priya wei mei oleksandr olga"
)
SURNAMES = _words(
    "smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez gonzalez "
    "wilson anderson thomas taylor moore jackson martin lee perez thompson white harris sanchez clark "
    "ramirez lewis robinson walker young allen king wright scott torres nguyen hill flores green adams "
    "nelson baker hall rivera campbell mitchell carter roberts gomez phillips evans turner diaz parker cruz "
    "edwards collins reyes stewart morris morales murphy cook rogers gutierrez ortiz morgan cooper peterson "
    "bailey reed kelly howard ramos kim cox ward richardson watson brooks chavez wood james bennett gray "
    "mendoza ruiz hughes price alvarez castillo sanders patel myers long ross foster jimenez powell jenkins "
    "perry russell sullivan bell coleman butler henderson barnes gonzales fisher vasquez simmons romero "
    "jordan patterson alexander hamilton graham reynolds griffin wallace moreno west cole hayes bryant "
    "herrera gibson ellis tran medina aguilar stevens murray ford castro marshall owens harrison fernandez "
    "mcdonald woods washington kennedy wells vargas henry chen freeman webb tucker guzman burns crawford "
    "olson simpson porter hunter gordon mendez silva shaw snyder mason dixon munoz hunt hicks holmes palmer "
    "wagner black robertson boyd rose stone salazar fox warren mills meyer rice schmidt garza daniels "
    "ferguson nichols stephens soto weaver ryan gardner payne grant dunn kelley spencer hawkins arnold "
    "pierce vazquez hansen peters santos hart bradley knight elliott cunningham duncan armstrong hudson "
    "carroll lane riley andrews alvarado ray delgado berry perkins hoffman johnston matthews pena richards "
    "contreras willis carpenter lawrence sandoval olmos"
)
# The long tail: about 30 % of people get a rare surname made of two or three of these syllables.
SYLLABLES = _words(
    "ka lo ven mar tel ris do bren sa vi nor ell an tor mi las qui ber zan fol gre hal ot ru pen sko wick dal mon ter"
)
DOMAINS = (
    ("gmail.com", 40),
    ("yahoo.com", 14),
    ("hotmail.com", 10),
    ("outlook.com", 8),
    ("icloud.com", 8),
    ("aol.com", 5),
    ("comcast.net", 5),
    ("bellsouth.net", 5),
    ("att.net", 5),
)
AREA_CODES = (("561", 50), ("954", 25), ("754", 10), ("305", 10), ("786", 5))
LOCATIONS = (("boca_raton", 45), ("pompano_beach", 30), ("in_home", 10), ("virtual", 15))
ZIPS = {
    "boca_raton": ("33431", "33432", "33433", "33434", "33486", "33487", "33496", "33498"),
    "pompano_beach": ("33060", "33062", "33064", "33069"),
    "in_home": ("33428", "33441", "33442", "33445", "33446"),
    "virtual": ("33401", "33020", "33139", "32801", "33602"),
}
TIERS = (("emergency", 2), ("urgent", 15), ("soon", 33), ("routine", 50))
# Status by the lead's age: fresh leads are mostly untouched, old ones mostly done or closed.
STATUS_FRESH = (("new", 80), ("contacted", 20))
STATUS_MONTH = (
    ("new", 35),
    ("contacted", 30),
    ("consult_booked", 15),
    ("consult_done", 5),
    ("converted", 5),
    ("not_converted", 2),
    ("referred_out", 2),
    ("closed", 6),
)
STATUS_OLD = (
    ("new", 8),
    ("contacted", 8),
    ("consult_booked", 2),
    ("consult_done", 2),
    ("converted", 18),
    ("not_converted", 12),
    ("referred_out", 5),
    ("closed", 45),
)
STATUS_OLD_EMERGENCY = (("new", 2), ("contacted", 8), ("referred_out", 60), ("closed", 20), ("converted", 10))
CLOSED_REASONS = (("no_response", 60), ("not_interested", 25), ("do_not_contact", 5), ("duplicate", 10))
# Local (America/New_York) hour of submission; stored in UTC.
HOUR_WEIGHTS = (1, 1, 0, 0, 0, 1, 2, 4, 6, 7, 8, 8, 7, 7, 7, 7, 6, 6, 6, 6, 5, 4, 3, 2)

LEAD_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "first_name",
    "last_name",
    "email",
    "phone",
    "preferred_contact",
    "location",
    "zip",
    "language",
    "status",
    "tier",
    "tier_rank",
    "route",
    "score",
    "urgency",
    "last_screened_at",
    "closed_reason",
    "assigned_to_id",
    "last_contact_at",
    "next_follow_up_at",
    "search_text",
)
SCREENING_COLUMNS = (
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
)
CONSENT_COLUMNS = (
    "id",
    "created_at",
    "lead_id",
    "screening_id",
    "privacy_notice_version",
    "privacy_accepted_at",
    "email_followup",
    "sms",
)
SEEDED_TABLES = {"leads": LEAD_COLUMNS, "screenings": SCREENING_COLUMNS, "consents": CONSENT_COLUMNS}


class Picker(Generic[T]):
    """Weighted choice by bisection: much cheaper per call than random.choices."""

    def __init__(self, pairs: Sequence[tuple[T, float]]):
        self.items = [item for item, _ in pairs]
        self.cumulative = list(itertools.accumulate(weight for _, weight in pairs))
        self.total = self.cumulative[-1]

    def __call__(self, rng: random.Random) -> T:
        return self.items[bisect.bisect_right(self.cumulative, rng.random() * self.total)]


def zipf(names: Sequence[str], exponent: float) -> Picker[str]:
    return Picker([(name, 1.0 / (rank + 1) ** exponent) for rank, name in enumerate(names)])


@dataclass(frozen=True, slots=True)
class Template:
    """A filled screen scored by the real rule set: what one screening row holds."""

    tier: str
    rank: int
    route: str
    score: int
    answers: str
    reasons: dict[str, str]


def uuid7_at(micros: int, rng: random.Random, bump: int = 0) -> uuid.UUID:
    """A UUIDv7 for this instant: 48-bit unix ms, 12-bit sub-ms fraction (method 3), 62 random bits."""
    millis, rest = divmod(micros, 1000)
    sub = min(4095, rest * 4096 // 1000 + bump)
    return uuid.UUID(int=(millis << 80) | (0x7 << 76) | (sub << 64) | (0b10 << 62) | rng.getrandbits(62))


def search_text(first: str, last: str, email: str, phone: str | None) -> str:
    """As intake.leads.contact.search_text (copied: the seed must not depend on email validation)."""
    return f"{first} {last} {email} {(phone or '').lstrip('+')}".lower()[:500]


def screening_templates(rng: random.Random, per_tier: int = 200) -> tuple[str, dict[str, list[Template]]]:
    """Random valid screens scored by the newest rule set, bucketed by tier."""
    from intake.screening import load_catalog

    catalog = load_catalog()
    questionnaire, rule_set = catalog.questionnaire, catalog.latest
    buckets: dict[str, dict[str, Template]] = {tier: {} for tier, _ in TIERS}
    for _attempt in range(400_000):
        if all(len(bucket) >= per_tier for bucket in buckets.values()):
            break
        flag = rng.choice((0.0, 0.01, 0.03, 0.08, 0.2))
        answers: dict[str, Any] = {}
        for link_id, item in questionnaire.items.items():
            if not item.required and rng.random() < 0.35:
                continue
            if item.type == "choice":
                options = list(item.options)
                if item.repeats:
                    answers[link_id] = rng.sample(options, rng.randint(1, min(3, len(options))))
                else:
                    answers[link_id] = rng.choices(options, [1.0 / (i + 1) ** 2 for i in range(len(options))])[0]
            elif item.type == "integer":
                low = item.minimum if item.minimum is not None else 0
                high = item.maximum if item.maximum is not None else 10
                answers[link_id] = rng.randint(low, min(high, 85))
            elif item.type == "boolean":
                answers[link_id] = rng.random() < flag
            elif item.type == "text" and rng.random() < 0.3:
                answers[link_id] = rng.choice(("Walk the dog without pain", "Play golf again", "Sleep through"))
        checked, errors = questionnaire.validate(answers)
        if errors:
            continue
        assessment = rule_set.assess(checked)
        tier = assessment.tier.value
        body = json.dumps(checked, separators=(",", ":"))
        if len(buckets[tier]) >= per_tier or body in buckets[tier]:
            continue
        reasons = {
            lang: json.dumps(
                [{"code": r.code, "tier": r.tier.value, "text": r.text} for r in rule_set.reasons(assessment, lang)],
                ensure_ascii=False,
            )
            for lang in ("en", "es")
        }
        buckets[tier][body] = Template(
            tier, assessment.tier.rank, assessment.route.value, assessment.score, body, reasons
        )
    missing = [tier for tier, bucket in buckets.items() if not bucket]
    if missing:
        raise RuntimeError(f"no random screen scored as {missing}: the rule set changed; adapt the generator")
    return rule_set.version, {tier: list(bucket.values()) for tier, bucket in buckets.items()}


@dataclass
class Generator:
    """Makes the rows of lead i (in created_at order): lead, screening, consent."""

    rng: random.Random
    now_us: int
    templates: dict[str, list[Template]]
    rule_set_version: str
    staff_ids: list[uuid.UUID]
    privacy_version: str = "2026-11-01"
    first: Picker[str] = field(init=False)
    last: Picker[str] = field(init=False)
    domain: Picker[str] = field(init=False)
    area: Picker[str] = field(init=False)
    location: Picker[str] = field(init=False)
    tier: Picker[str] = field(init=False)
    fresh: Picker[str] = field(init=False)
    month: Picker[str] = field(init=False)
    old: Picker[str] = field(init=False)
    old_emergency: Picker[str] = field(init=False)
    closed: Picker[str] = field(init=False)

    def __post_init__(self) -> None:
        self.first = zipf(FIRST_NAMES, 0.7)
        self.last = zipf(SURNAMES, 0.8)
        self.domain = Picker(DOMAINS)
        self.area = Picker(AREA_CODES)
        self.location = Picker(LOCATIONS)
        self.tier = Picker(TIERS)
        self.fresh = Picker(STATUS_FRESH)
        self.month = Picker(STATUS_MONTH)
        self.old = Picker(STATUS_OLD)
        self.old_emergency = Picker(STATUS_OLD_EMERGENCY)
        self.closed = Picker(CLOSED_REASONS)

    def surname(self) -> str:
        rng = self.rng
        if rng.random() < 0.3:
            return "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 3, 3))))
        return self.last(rng)

    def rows(self, index: int, micros: int) -> tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]:
        rng = self.rng
        created = dt.datetime.fromtimestamp(micros / 1_000_000, dt.UTC)
        lead_id = uuid7_at(micros, rng)
        first, last = self.first(rng), self.surname()
        pattern = rng.random()
        if pattern < 0.4:
            local = f"{first}.{last}{index}"
        elif pattern < 0.65:
            local = f"{first[0]}{last}{index}"
        elif pattern < 0.85:
            local = f"{first}{last[0]}{index}"
        else:
            local = f"{last}.{first}{index}"
        email = f"{local}@{self.domain(rng)}"
        phone = None
        if rng.random() < 0.9:
            # 7919 is prime to 8,000,000: every lead gets its own number (exchange 2xx-9xx).
            phone = f"+1{self.area(rng)}{2_000_000 + (index * 7919 + 12345) % 8_000_000}"
        preferred = "email" if phone is None else ("email", "email", "phone", "text")[rng.randrange(4)]
        location = self.location(rng)
        zip_code = rng.choice(ZIPS[location]) if rng.random() < 0.9 else None
        language = "es" if rng.random() < 0.18 else "en"
        tier = self.tier(rng)
        template = rng.choice(self.templates[tier])
        age_days = (self.now_us - micros) / 86_400_000_000
        if age_days < 2:
            status = self.fresh(rng)
        elif age_days < 30:
            status = self.month(rng)
        else:
            status = (self.old_emergency if tier == "emergency" else self.old)(rng)
        closed_reason = self.closed(rng) if status == "closed" else None
        assigned = None
        if self.staff_ids and rng.random() < (0.08 if status == "new" else 0.75):
            assigned = rng.choice(self.staff_ids)
        last_contact = next_follow_up = None
        if status != "new":
            hours = rng.uniform(0.05, 1.0) if tier == "emergency" else rng.uniform(0.5, 72.0)
            last_contact = created + dt.timedelta(hours=hours)
            if status in ("contacted", "consult_booked"):
                next_follow_up = last_contact + dt.timedelta(days=rng.uniform(2, 7))
        updated = last_contact or created
        urgency = template.rank * 200 + (100 - template.score)
        lead = (
            lead_id,
            created,
            updated,
            first.capitalize(),
            last.capitalize(),
            email,
            phone,
            preferred,
            location,
            zip_code,
            language,
            status,
            tier,
            template.rank,
            template.route,
            template.score,
            urgency,
            created,
            closed_reason,
            assigned,
            last_contact,
            next_follow_up,
            search_text(first, last, email, phone),
        )
        screening_id = uuid7_at(micros, rng, bump=1)
        screening = (
            screening_id,
            created,
            lead_id,
            language,
            template.answers,
            self.rule_set_version,
            tier,
            template.route,
            template.score,
            template.reasons[language],
        )
        consent = (
            uuid7_at(micros, rng, bump=2),
            created,
            lead_id,
            screening_id,
            self.privacy_version,
            created,
            rng.random() < 0.7,
            phone is not None and rng.random() < 0.35,
        )
        return lead, screening, consent


def creation_times(rng: random.Random, count: int, now_us: int, days: int = 730) -> list[int]:
    """Sorted epoch microseconds over `days`: volume growing 0.6x to 1.4x, mostly business hours."""
    hour = Picker(list(enumerate(HOUR_WEIGHTS)))
    start = now_us - days * 86_400_000_000
    out = []
    for _ in range(count):
        u = rng.random()
        x = (-0.6 + math.sqrt(0.36 + 1.6 * u)) / 0.8  # inverse CDF of the density 0.6 + 0.8x on [0, 1]
        day = min(days - 1, int(x * days))
        local_hour = hour(rng)
        seconds = ((local_hour + 5) % 24) * 3600 + rng.random() * 3600  # New York is UTC-5 (no DST here)
        out.append(start + day * 86_400_000_000 + int(seconds * 1_000_000))
    out.sort()
    return [min(value, now_us - 1) for value in out]


# --- database helpers ----------------------------------------------------------------------------


async def seed_marker(url: str) -> dict[str, Any] | None:
    """The seed description if this database holds a complete seed (and as many leads as it says)."""
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        comment = await conn.fetchval("SELECT obj_description('leads'::regclass, 'pg_class')")
        if not comment or not comment.startswith(SEED_MARK + " "):
            return None
        info: dict[str, Any] = json.loads(comment[len(SEED_MARK) + 1 :])
        count = await conn.fetchval("SELECT count(*) FROM leads")
        return info if count == info.get("leads") else None
    finally:
        await conn.close()


async def ensure_staff(url: str, with_assignees: bool) -> list[uuid.UUID]:
    """The benchmark's front-desk login (through StaffService, as `intake create-staff` does), and
    on a new seed six colleagues the leads are assigned to."""
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import create_async_engine

    from intake.db.engine import create_sessionmaker
    from intake.db.models import StaffMember
    from intake.settings import load_settings
    from intake.staff.accounts import StaffService

    engine = create_async_engine(url)
    try:
        sessionmaker = create_sessionmaker(engine)
        service = StaffService(sessionmaker, load_settings().auth)
        async with sessionmaker() as session:
            exists = (
                await session.execute(select(StaffMember.id).where(StaffMember.email == BENCH_EMAIL))
            ).scalar_one_or_none()
        if exists is None:
            await service.create(email=BENCH_EMAIL, name="Bench Front Desk", role="front_desk", password=BENCH_PASSWORD)
        ids: list[uuid.UUID] = []
        if with_assignees:
            for n, (name, role) in enumerate(
                (
                    ("Ana Front", "front_desk"),
                    ("Ben Desk", "front_desk"),
                    ("Carla Clinician", "clinician"),
                    ("Dev Therapist", "clinician"),
                    ("Eve Physio", "clinician"),
                    ("Fay Admin", "admin"),
                )
            ):
                member = await service.create(
                    email=f"colleague{n}@example.com", name=name, role=role, password=secrets.token_urlsafe(16)
                )
                ids.append(member.id)
        return ids
    finally:
        await engine.dispose()


async def seed(url: str, count: int, seed_value: int) -> dict[str, Any]:
    """Fill a freshly migrated database; returns what was done and how long each step took."""
    import asyncpg

    timings: dict[str, float] = {}
    started = time.perf_counter()
    rng = random.Random(seed_value)
    rule_set_version, templates = screening_templates(random.Random(seed_value + 1))
    staff_ids = await ensure_staff(url, with_assignees=True)
    now_us = int(time.time() * 1_000_000)
    stamps = creation_times(rng, count, now_us)
    timings["prepare_s"] = time.perf_counter() - started

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await _check_columns(conn)
        # Bulk-load settings of this session only: no per-row FK triggers (rows are consistent by
        # construction), no WAL flush per commit, memory for the index builds.
        await conn.execute(
            "SET session_replication_role = replica; SET synchronous_commit = off; "
            "SET maintenance_work_mem = '1GB'; SET max_parallel_maintenance_workers = 2"
        )
        indexes = await conn.fetch(
            """
            SELECT i.relname AS name, pg_get_indexdef(i.oid) AS definition
            FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
            WHERE t.relname = ANY($1::text[]) AND t.relnamespace = 'public'::regnamespace
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
            ORDER BY t.relname, i.relname
            """,
            list(SEEDED_TABLES),
        )
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["name"]}"')

        phase = time.perf_counter()
        generator = Generator(rng, now_us, templates, rule_set_version, staff_ids)
        chunk = 20_000
        generate_s = 0.0
        for begin in range(0, count, chunk):
            t0 = time.perf_counter()
            leads, screenings, consents = [], [], []
            for index in range(begin, min(begin + chunk, count)):
                lead, screening, consent = generator.rows(index, stamps[index])
                leads.append(lead)
                screenings.append(screening)
                consents.append(consent)
            generate_s += time.perf_counter() - t0
            async with conn.transaction():
                await conn.copy_records_to_table("leads", records=leads, columns=list(LEAD_COLUMNS))
                await conn.copy_records_to_table("screenings", records=screenings, columns=list(SCREENING_COLUMNS))
                await conn.copy_records_to_table("consents", records=consents, columns=list(CONSENT_COLUMNS))
            done = min(begin + chunk, count)
            if done % 100_000 == 0 or done == count:
                rate = done / (time.perf_counter() - phase)
                print(f"  seeded {done:>9,} leads ({rate:,.0f}/s)", flush=True)
        timings["load_s"] = time.perf_counter() - phase
        timings["load_generate_s"] = generate_s

        phase = time.perf_counter()
        index_s: dict[str, float] = {}
        for index in indexes:
            t0 = time.perf_counter()
            await conn.execute(index["definition"])
            index_s[index["name"]] = round(time.perf_counter() - t0, 1)
        timings["index_s"] = time.perf_counter() - phase

        phase = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE) leads, screenings, consents, staff_members")
        timings["vacuum_analyze_s"] = time.perf_counter() - phase
        timings["total_s"] = time.perf_counter() - started
        info = {
            "leads": count,
            "seed": seed_value,
            "seeded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "rule_set_version": rule_set_version,
            "ids": "uuid7 from created_at",
            "timings": {**{k: round(v, 1) for k, v in timings.items()}, "indexes": index_s},
        }
        await conn.execute(f"COMMENT ON TABLE leads IS {_literal(SEED_MARK + ' ' + json.dumps(info))}")
        return info
    finally:
        await conn.close()


async def _check_columns(conn: Any) -> None:
    """A NOT NULL column without a default that the seed does not fill would fail the COPY late."""
    rows = await conn.fetch(
        """SELECT table_name, column_name FROM information_schema.columns
           WHERE table_schema = 'public' AND table_name = ANY($1::text[])
             AND is_nullable = 'NO' AND column_default IS NULL""",
        list(SEEDED_TABLES),
    )
    missing = [
        f"{r['table_name']}.{r['column_name']}" for r in rows if r["column_name"] not in SEEDED_TABLES[r["table_name"]]
    ]
    if missing:
        raise SystemExit(f"the schema has NOT NULL columns the seed does not fill: {', '.join(missing)}")


def _literal(value: Any) -> str:
    """A SQL literal for EXECUTE arguments and comments (standard_conforming_strings is on)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.datetime):
        return f"'{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def prepare_database(url: str, reseed: bool, count: int, seed_value: int) -> dict[str, Any]:
    """A migrated database holding `count` seeded leads: reused when marked complete, else seeded."""
    from intake.db.migrate import upgrade_head

    name = database_name(url)
    if not reseed and database_exists(url):
        upgrade_head(url)
        info = asyncio.run(seed_marker(url))
        if info is not None and info["leads"] == count:
            asyncio.run(ensure_staff(url, with_assignees=False))
            print(f"database {name}: reusing the seed of {info['seeded_at']} ({count:,} leads; --reseed to redo)")
            return {**info, "reused": True}
        print(f"database {name}: no complete seed of {count:,} leads in it: seeding anew")
    print(f"database {name}: (re)creating, migrating, seeding {count:,} leads")
    recreate_database(url)
    upgrade_head(url)
    info = asyncio.run(seed(url, count, seed_value))
    t = info["timings"]
    print(
        f"seeded in {t['total_s']:.0f} s: prepare {t['prepare_s']:.0f} s, COPY {t['load_s']:.0f} s "
        f"(of which generating rows {t['load_generate_s']:.0f} s), indexes {t['index_s']:.0f} s, "
        f"VACUUM ANALYZE {t['vacuum_analyze_s']:.0f} s"
    )
    return {**info, "reused": False}


# --- the statements the lead list runs -------------------------------------------------------------


def _app_factory() -> str:
    """What `intake serve` hands uvicorn: the app with the serving process's GC tuning (or, in checkouts from
    before `served_app`, the bare factory)."""
    cli = _checkout() / "intake" / "cli.py"
    return "intake.cli:served_app" if "def served_app(" in cli.read_text() else "intake.app:create_app"


def _lead_lists() -> Any:
    """The class that builds the lead list statements: LeadQueue, or LeadService in older checkouts."""
    try:
        from intake.leads.queue import LeadQueue
    except ImportError:  # a checkout from before intake.leads.queue
        from intake.leads.management import LeadService

        return LeadService
    return LeadQueue


@dataclass
class Statements:
    """Compiles the app's own lead list statements with the app's dialect (asyncpg, $n parameters)."""

    dialect: Any
    service: Any

    @classmethod
    async def create(cls, url: str) -> Statements:
        from sqlalchemy.ext.asyncio import create_async_engine

        from intake.settings import load_settings

        engine = create_async_engine(url)
        try:
            async with engine.connect():
                pass  # the dialect learns the server's settings (standard_conforming_strings) on connect
        finally:
            await engine.dispose()
        return cls(engine.dialect, _lead_lists()(None, load_settings()))

    def build(
        self,
        filters: dict[str, str],
        sort: Sort,
        cursor: str | None,
        limit: int,
        offset: int | None = None,
    ) -> tuple[str, list[Any]]:
        from intake.leads.schemas import LeadFilters

        wanted = LeadFilters(**filters)  # type: ignore[arg-type]  # status, tier, q: all strings
        if hasattr(self.service, "_page"):  # the statement list_leads runs (a search picks its ids first)
            stmt = self.service._page(wanted, sort, cursor, limit)
        else:  # a checkout from before _page
            stmt = _lead_lists()._ordered(self.service._filtered(wanted), sort, cursor).limit(limit + 1)
        if offset is not None:
            stmt = stmt.offset(offset)
        compiled = stmt.compile(dialect=self.dialect)
        params = compiled.construct_params()
        return str(compiled), [params[name] for name in compiled.positiontup or ()]


# --- statistics ----------------------------------------------------------------------------------


def summary(values: Sequence[float]) -> dict[str, float]:
    return support.summary(values, digits=3)


# --- other load on the machine -------------------------------------------------------------------
# On a small shared machine, another process's work shows up as our latency: each timed case
# records how many cores everything else used meanwhile, and waits (up to a limit) for quiet first.


class CpuMeter:
    """Cores used by this benchmark (client, server, its PostgreSQL backends) and by everything else."""

    def __init__(self, database: str):
        self.database = database
        self.pids: list[int] = [os.getpid()]
        self._meter = support.CpuMeter({"ours": lambda: [*self.pids, *postgres_backends(self.database)]})
        self._start = self._meter.read()

    def start(self) -> None:
        self._start = self._meter.read()

    def stop(self) -> tuple[float, float]:
        """(cores used by others, cores used by us) since start()."""
        cores = support.CpuMeter.cores(self._start, self._meter.read())
        return cores[support.OTHER_WORK], cores["ours"]

    def wait_quiet(self, threshold: float, timeout: float, window: int = 3) -> tuple[float, bool]:
        """Wait until others used under `threshold` cores for `window` seconds in a row, at most
        `timeout` seconds: the seconds waited, and whether it got quiet."""
        began = time.monotonic()
        quiet = 0
        while quiet < window and time.monotonic() - began < timeout:
            self.start()
            time.sleep(1.0)
            others, _ = self.stop()
            quiet = quiet + 1 if others < threshold else 0
        return time.monotonic() - began, quiet >= window


# --- the server ----------------------------------------------------------------------------------


class Server:
    """The app in its own process, as `intake serve --no-worker` runs it (minus the migration)."""

    def __init__(self, url: str, log_level: str):
        self.url = url
        self.log_level = log_level
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-leads-"))
        self.log_path = self.tmp / "server.log"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def start(self) -> None:
        import httpx

        data_dir = self.tmp / "data"
        data_dir.mkdir()
        env = {
            **os.environ,
            "DATABASE_URL": self.url,
            "INTAKE_DATA_DIR": str(data_dir),
            "INTAKE_ENV": "production",
            "PUBLIC_BASE_URL": "http://127.0.0.1",  # required in production; no link is followed here
            "LOG_LEVEL": self.log_level,
            "LOG_FORMAT": "json",
            "JWT_SECRET": secrets.token_urlsafe(30),
            "ACCESS_TOKEN_MINUTES": "240",
            "REDIS_URL": "",
        }
        code = (
            f"import uvicorn; uvicorn.run('{_app_factory()}', factory=True, host='127.0.0.1', "
            f"port={self.port}, workers=1, access_log=False, log_config=None, proxy_headers=True)"
        )
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", code],
                cwd=_checkout(),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}):\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + "/ready", timeout=2).status_code == 200:
                    self._log_offset = self.log_path.stat().st_size
                    return
            time.sleep(0.2)
        raise RuntimeError(f"the server did not become ready in 60 s:\n{self.tail()}")

    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def app_times(self) -> dict[str, float]:
        """Handling time (ms, from the app's access line) by request id, of lines logged since last asked."""
        times: dict[str, float] = {}
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            data = log.read()
            self._log_offset += len(data)
        for line in data.splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and entry.get("event") == "http.request" and "request_id" in entry:
                    times[str(entry["request_id"])] = float(entry["ms"])
        return times

    def stop(self) -> None:
        process, self.process = self.process, None
        stop_process(process, timeout=15)


def _checkout() -> Path:
    """The folder of the `intake` this process imports (PYTHONPATH first): the server runs it too."""
    import intake

    return Path(intake.__file__).resolve().parents[1]


# --- the HTTP cases --------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    path: str
    params: list[dict[str, str]]
    """One set of query parameters per request, used in turn."""
    target_ms: float | None
    labels: list[str] | None = None
    """For a rotating case: the label of each parameter set (per-label figures are reported too)."""
    follow: int = 0
    """Walk: each parameter set is a starting point; from it, follow the response's next_cursor for
    this many pages in all, then go on from the next starting point."""
    client_ms: list[float] = field(default_factory=list)
    app_ms: list[float] = field(default_factory=list)
    label_of: list[str] = field(default_factory=list)
    rows: int = 0
    other_cores: float = 0.0
    our_cores: float = 0.0
    attempts: list[float] = field(default_factory=list)
    """Others' cores during each attempt (a disturbed attempt is done again, the quietest kept)."""


@dataclass
class Quiet:
    """How long to wait for the machine to be quiet: `budget` seconds in all, then no more waiting
    and no more runs again (the figures then say how busy the machine was)."""

    meter: CpuMeter
    threshold: float
    budget: float
    retries: int

    def wait(self) -> str:
        """Wait for quiet (within the budget left); says how it went."""
        if self.budget <= 0:
            return "no quiet-wait budget left"
        waited, quiet = self.meter.wait_quiet(self.threshold, self.budget)
        self.budget -= waited
        state = "quiet" if quiet else f"still busy (others over {self.threshold} cores), going on"
        return f"{state} after {waited:.0f} s"


def run_case(client: Any, server: Server, case: Case, warmup: int, requests: int, tag: str) -> None:
    for i in range(warmup):
        response = client.get(case.path, params=case.params[i % len(case.params)])
        response.raise_for_status()
    ids: list[str] = []
    case.client_ms, case.label_of = [], []
    start, cursor, steps = -1, None, 0
    gc.collect()
    gc.disable()
    try:
        for i in range(requests):
            request_id = f"bench-{tag}-{i}-{secrets.token_hex(3)}"
            if case.follow and cursor is not None and steps < case.follow:
                params = {**case.params[start % len(case.params)], "cursor": cursor}
                steps += 1
            else:
                start += 1
                params = case.params[start % len(case.params)] if case.follow else case.params[i % len(case.params)]
                steps = 1
            t0 = time.perf_counter()
            response = client.get(case.path, params=params, headers={"X-Request-ID": request_id})
            elapsed = (time.perf_counter() - t0) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"{case.name}: HTTP {response.status_code}: {response.text[:300]}")
            case.client_ms.append(elapsed)
            ids.append(request_id)
            if case.labels:
                case.label_of.append(case.labels[i % len(case.labels)])
            body = response.json()
            case.rows = len(body["items"]) if isinstance(body, dict) and "items" in body else 0
            cursor = body.get("next_cursor") if isinstance(body, dict) else None
    finally:
        gc.enable()
    app = server.app_times()
    case.app_ms = [app[i] for i in ids if i in app]


def run_quietly(client: Any, server: Server, case: Case, warmup: int, requests: int, tag: str, quiet: Quiet) -> None:
    """Run the case; while other processes used more than the threshold meanwhile, wait for quiet
    and run it again (at most `retries` times), keeping the least disturbed run."""
    best: Case | None = None
    for attempt in range(quiet.retries + 1):
        if attempt:
            if quiet.budget <= 0:
                break
            print(f"    (others used {case.other_cores} cores meanwhile; {quiet.wait()}: again)")
        quiet.meter.start()
        run_case(client, server, case, warmup, requests, f"{tag}a{attempt}")
        case.other_cores, case.our_cores = quiet.meter.stop()
        case.attempts.append(case.other_cores)
        if best is None or case.other_cores < best.other_cores:
            best = dataclasses.replace(case, attempts=case.attempts)
        if case.other_cores < quiet.threshold:
            break
    assert best is not None
    for name in ("client_ms", "app_ms", "label_of", "rows", "other_cores", "our_cores"):
        setattr(case, name, getattr(best, name))


def walk(client: Any, path: str, params: dict[str, str], pages: int) -> tuple[list[str], list[str], float]:
    """Follow next_cursor `pages` times; the next_cursor of every page (the last: the page after
    them), the ids seen, and the time."""
    cursor: str | None = None
    cursors: list[str] = []
    seen: list[str] = []
    t0 = time.perf_counter()
    for _ in range(pages):
        response = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        response.raise_for_status()
        body = response.json()
        seen.extend(item["id"] for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            raise RuntimeError(f"{path} {params}: the list ended before {pages} pages")
        cursors.append(cursor)
    return cursors, seen, time.perf_counter() - t0


# --- database-only: keyset against OFFSET, plans -----------------------------------------------------


async def db_facts(url: str, seed_value: int, per_kind: int) -> dict[str, Any]:
    """Counts of the filters, and search terms that exist (picked deterministically from the data):
    `per_kind` of each kind (surnames common to rare, first names, full names, emails, phones)."""
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        facts: dict[str, Any] = {
            "leads": await conn.fetchval("SELECT count(*) FROM leads"),
            "new": await conn.fetchval("SELECT count(*) FROM leads WHERE status = 'new'"),
            "new_urgent": await conn.fetchval(
                "SELECT count(*) FROM leads WHERE status = 'new' AND urgency >= 200 AND urgency < 400"
            ),
        }
        rng = random.Random(seed_value + 2)
        total = int(facts["leads"])

        async def lead_at(position: int) -> Any:
            return await conn.fetchrow(
                "SELECT first_name, last_name, email, phone FROM leads ORDER BY created_at, id OFFSET $1 LIMIT 1",
                position,
            )

        async def pick(accept: Any) -> Any:
            while True:
                row = await lead_at(rng.randrange(total))
                if accept(row):
                    return row

        # `per_kind` terms of each kind, different people and names each: a staff member searching
        # all day does not type one name over and over (the server's caches would flatter it).
        terms: list[tuple[str, str]] = []
        rare_seen: set[str] = set()
        for i in range(per_kind):
            someone = await lead_at(rng.randrange(total))
            with_phone = await pick(lambda row: bool(row["phone"]))
            rare = await pick(
                lambda row: (
                    row["last_name"].lower() not in SURNAMES
                    and len(row["last_name"]) >= 6
                    and row["last_name"] not in rare_seen
                )
            )
            rare_seen.add(rare["last_name"])
            digits = with_phone["phone"][-10:]
            terms += [
                ("common surname", SURNAMES[i % 10].capitalize()),
                ("mid surname", SURNAMES[(50 + i * 3) % len(SURNAMES)].capitalize()),
                ("uncommon surname", SURNAMES[(100 + i * 2) % len(SURNAMES)].capitalize()),
                ("rare surname", rare["last_name"]),
                ("first name", FIRST_NAMES[(80 + i * 7) % len(FIRST_NAMES)].capitalize()),
                ("first + last name", f"{FIRST_NAMES[i * 3 % 40]} {SURNAMES[2 + i * 5 % 40]}".title()),
                ("email prefix", someone["email"].split("@")[0][:14]),
                ("email, first letters", (await lead_at(rng.randrange(total)))["email"][:8]),
                ("phone digits", f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"),
            ]
        try:
            from intake.leads.queue import _search_term
        except ImportError:  # a checkout from before intake.leads.queue
            from intake.leads.management import _search_term  # type: ignore[no-redef]

        counted = []
        for label, term in terms:
            pattern = f"%{_search_term(term)}%"
            matches = await conn.fetchval(r"SELECT count(*) FROM leads WHERE search_text LIKE $1 ESCAPE '\'", pattern)
            counted.append({"label": label, "q": term, "matches": matches})
        facts["search_terms"] = counted
        return facts
    finally:
        await conn.close()


async def db_timings(
    url: str, shapes: list[tuple[str, str, list[Any], int, int]], meter: CpuMeter
) -> dict[str, dict[str, Any]]:
    """Each statement (name, sql, params, warm-up, requests) as a prepared statement on one asyncpg
    connection, as the app runs it: client-side ms per fetch."""
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(url))
    out: dict[str, dict[str, Any]] = {}
    try:
        for name, sql, params, warmup, requests in shapes:
            stmt = await conn.prepare(sql)
            for _ in range(warmup):
                await stmt.fetch(*params)
            times = []
            rows: list[Any] = []
            meter.start()
            for _ in range(requests):
                t0 = time.perf_counter()
                rows = await stmt.fetch(*params)
                times.append((time.perf_counter() - t0) * 1000)
            others, _ = meter.stop()
            out[name] = {**summary(times), "ids": [str(r["id"]) for r in rows], "other_cores": others}
    finally:
        await conn.close()
    return out


_SCAN = re.compile(
    r"(Index Only Scan(?: Backward)?|Index Scan(?: Backward)?|Bitmap Index Scan|Seq Scan|Bitmap Heap Scan)"
    r" (?:using|on) (\w+)"
)


@dataclass
class PlanShape:
    name: str
    sql: str
    params: list[Any]
    warm: list[list[Any]] = field(default_factory=list)
    """Parameter sets the app's connection ran this statement with before (for the prepared plan)."""


async def explain_all(url: str, shapes: list[PlanShape]) -> tuple[str, dict[str, dict[str, Any]]]:
    """EXPLAIN (ANALYZE, BUFFERS) of each shape: custom (this request's values) and prepared (after 5 runs)."""
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(url))
    summaries: dict[str, dict[str, Any]] = {}
    text = [
        "EXPLAIN (ANALYZE, BUFFERS) of the lead list statements, compiled from LeadQueue (bench/leads.py).",
        "custom: planned with this request's values. prepared: the 6th execution of the prepared statement",
        "(plan_cache_mode=auto, as the app's asyncpg connection runs it): `$n` in it means a generic plan.",
        "",
    ]
    try:
        for number, shape in enumerate(shapes):
            plans: dict[str, str] = {}
            rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + shape.sql, *shape.params)
            plans["custom"] = "\n".join(r[0] for r in rows)
            statement = f"bench_plan_{number}"
            await conn.execute(f"PREPARE {statement} AS {shape.sql}")
            try:
                warm = shape.warm or [shape.params]
                for i in range(5):
                    await conn.execute(f"EXECUTE {statement}({', '.join(map(_literal, warm[i % len(warm)]))})")
                args = ", ".join(map(_literal, shape.params))
                rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE {statement}({args})")
                plans["prepared"] = "\n".join(r[0] for r in rows)
            finally:
                await conn.execute(f"DEALLOCATE {statement}")
            text += [
                "=" * 100,
                f"{shape.name}",
                "-" * 100,
                shape.sql,
                f"-- parameters: {[str(p) for p in shape.params]}",
            ]
            summaries[shape.name] = {}
            for kind, plan in plans.items():
                text += ["", f"--- {kind} plan", plan]
                scans = sorted({f"{m.group(1)} {m.group(2)}" for m in _SCAN.finditer(plan)})
                executed = re.search(r"Execution Time: ([\d.]+) ms", plan)
                summaries[shape.name][kind] = {
                    "scans": scans,
                    "generic": "$1" in plan,
                    "execution_ms": float(executed.group(1)) if executed else None,
                }
            text.append("")
    finally:
        await conn.close()
    return "\n".join(text) + "\n", summaries


# --- the run --------------------------------------------------------------------------------------


def http_cases(
    server: Server,
    token: str,
    facts: dict[str, Any],
    depth: int,
    limit: int,
    warmup: int,
    requests: int,
    quiet: Quiet,
    starts: int,
    follow: int,
) -> tuple[list[Case], dict[str, Any]]:
    import httpx

    page = {"limit": str(limit)}
    walks: dict[str, Any] = {}
    cases: list[Case] = []
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        # Cursors deep in each list, by walking it as a user would (also checks no row repeats): the
        # deep cases start from `starts` of them, spread over the second half of the walk, and follow
        # each response's next_cursor from there, so no two timed requests ask for the same page.
        deep: dict[str, list[str]] = {}
        span: dict[str, str] = {}
        depth_of: dict[str, int] = {}
        lists = {
            "urgency": ("/api/leads", {"sort": "urgency", **page}, int(facts["leads"])),
            "newest": ("/api/leads", {"sort": "newest", **page}, int(facts["leads"])),
            "new+urgent": ("/api/leads", {"status": "new", "tier": "urgent", **page}, int(facts["new_urgent"])),
            "triage": ("/api/triage-queue", page, int(facts["new"])),
        }
        for key, (path, params, available) in lists.items():
            pages = min(depth, (available - limit) // limit * limit) // limit
            if pages < 1:
                continue
            cursors, seen, seconds = walk(client, path, params, pages)
            cursor = cursors[-1]
            half = pages // 2
            picked = sorted({half + k * (pages - half) // max(1, starts) for k in range(starts)})
            deep[key] = [cursors[i] for i in picked if i < len(cursors)]
            span[key] = (
                f"{(picked[0] + 1) * limit:,}-{(pages + follow) * limit:,} deep "
                f"(next_cursor from {len(deep[key])} starts, {follow} pages each)"
            )
            depth_of[key] = pages * limit
            walks[key] = {
                "pages": pages,
                "depth": pages * limit,
                "seconds": round(seconds, 2),
                "ms_per_page": round(seconds * 1000 / pages, 2),
                "distinct_ids": len(set(seen)) == len(seen),
                "cursor": cursor,
            }
            print(f"  walked {pages} pages of {key} to depth {pages * limit:,} in {seconds:.1f} s")

        def with_cursor(key: str, params: dict[str, str]) -> list[dict[str, str]]:
            return [{**params, "cursor": c} for c in deep[key]]

        cases = [
            Case("GET /health (HTTP floor: no auth, no DB)", "/health", [{}], None),
            Case("GET /api/auth/me (HTTP + auth floor)", "/api/auth/me", [{}], None),
            Case("first page, urgency", "/api/leads", [{"sort": "urgency", **page}], LIST_TARGET_MS),
            Case("first page, newest", "/api/leads", [{"sort": "newest", **page}], LIST_TARGET_MS),
        ]
        for key, sort in (("urgency", "urgency"), ("newest", "newest")):
            if key in deep:
                cases.append(
                    Case(
                        f"{sort}, pages {span[key]}",
                        "/api/leads",
                        with_cursor(key, {"sort": sort, **page}),
                        LIST_TARGET_MS,
                        follow=follow,
                    )
                )
        filtered = {"status": "new", "tier": "urgent", **page}
        cases.append(Case("filtered new+urgent, first page", "/api/leads", [filtered], LIST_TARGET_MS))
        if "new+urgent" in deep:
            cases.append(
                Case(
                    f"filtered new+urgent, pages {span['new+urgent']}",
                    "/api/leads",
                    with_cursor("new+urgent", filtered),
                    LIST_TARGET_MS,
                    follow=follow,
                )
            )
        cases.append(Case("triage queue, first page", "/api/triage-queue", [page], LIST_TARGET_MS))
        if "triage" in deep:
            cases.append(
                Case(
                    f"triage queue, pages {span['triage']}",
                    "/api/triage-queue",
                    with_cursor("triage", page),
                    LIST_TARGET_MS,
                    follow=follow,
                )
            )
        terms = facts["search_terms"]
        cases.append(
            Case(
                f"search, {len(terms)} terms in turn ({len({t['label'] for t in terms})} kinds)",
                "/api/leads",
                [{"q": t["q"], **page} for t in terms],
                SEARCH_TARGET_MS,
                labels=[t["label"] for t in terms],
            )
        )
        print(f"  machine {quiet.wait()}; timing")
        for number, case in enumerate(cases):
            run_quietly(client, server, case, warmup, requests, f"c{number}", quiet)
            p50, p95 = percentile(case.client_ms, 50), percentile(case.client_ms, 95)
            print(
                f"  {case.name:<44} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  ({case.rows} rows, "
                f"others {case.other_cores} cores)"
            )
    walks["depth_of"] = depth_of
    return cases, walks


def login(server: Server) -> str:
    import httpx

    response = httpx.post(
        server.base_url + "/api/auth/login", json={"email": BENCH_EMAIL, "password": BENCH_PASSWORD}, timeout=30
    )
    if response.status_code != 200:
        raise RuntimeError(f"login failed: HTTP {response.status_code} {response.text[:300]}")
    return str(response.json()["access_token"])


def table_rows(cases: list[Case], db: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for case in cases:
        client, app = summary(case.client_ms), summary(case.app_ms) if case.app_ms else None
        row: dict[str, Any] = {
            "case": case.name,
            "via": "HTTP",
            "requests": len(case.client_ms),
            "rows_per_page": case.rows,
            "client_ms": client,
            "app_ms": app,
            "target_p95_ms": case.target_ms,
            "met": None if case.target_ms is None else client["p95"] <= case.target_ms,
            "other_cores": case.other_cores,
            "our_cores": case.our_cores,
            "attempts_other_cores": case.attempts,
        }
        rows.append(row)
        if case.labels:
            for label in dict.fromkeys(case.labels):
                picked = [ms for ms, lab in zip(case.client_ms, case.label_of, strict=True) if lab == label]
                rows.append(
                    {
                        "case": f"  search: {label}",
                        "via": "HTTP",
                        "requests": len(picked),
                        "client_ms": summary(picked),
                        "app_ms": None,
                        "target_p95_ms": case.target_ms,
                        "met": percentile(picked, 95) <= (case.target_ms or math.inf),
                        "other_cores": case.other_cores,
                        "part_of": case.name,
                    }
                )
    for name, result in db.items():
        rows.append(
            {
                "case": name,
                "via": "asyncpg",
                "requests": result["n"],
                "client_ms": {k: v for k, v in result.items() if k not in ("ids", "other_cores")},
                "app_ms": None,
                "target_p95_ms": None,
                "met": None,
                "other_cores": result["other_cores"],
            }
        )
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'case':<44} {'via':<7} {'p50 ms':>8} {'p95 ms':>8} {'app p50':>8} {'app p95':>8} {'others':>6} "
        f"{'target':>7}  met?"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        client, app = row["client_ms"], row["app_ms"]
        target = f"<={row['target_p95_ms']:.0f}" if row["target_p95_ms"] else "-"
        met = "-" if row["met"] is None else ("yes" if row["met"] else "NO")
        app50, app95 = (f"{app['p50']:.1f}", f"{app['p95']:.1f}") if app else ("-", "-")
        print(
            f"{row['case']:<44} {row['via']:<7} {client['p50']:8.2f} {client['p95']:8.2f} "
            f"{app50:>8} {app95:>8} {row['other_cores']:6.2f} {target:>7}  {met}"
        )


async def server_facts(url: str) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        settings = {
            name: await conn.fetchval(f"SHOW {name}")
            for name in ("server_version", "shared_buffers", "work_mem", "effective_cache_size", "random_page_cost")
        }
        sizes = await conn.fetch(
            """SELECT c.relname AS name, pg_size_pretty(pg_relation_size(c.oid)) AS size
               FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
                 AND (c.relname IN ('leads', 'screenings', 'consents') OR c.relname LIKE 'ix_leads%')
               ORDER BY pg_relation_size(c.oid) DESC"""
        )
        return {"settings": settings, "sizes": {r["name"]: r["size"] for r in sizes}}
    finally:
        await conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/leads.py",
        description=__doc__.split("\n\n", 1)[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_LEADS_DATABASE_URL", DEFAULT_URL),
        help="PostgreSQL (postgresql+asyncpg://, name containing 'bench'); seeded once, kept for the next run",
    )
    parser.add_argument("--leads", type=int, default=1_000_000, help="leads (each with a screening) to seed")
    parser.add_argument("--reseed", action="store_true", help="drop and seed the database even if it holds a seed")
    parser.add_argument("--seed", type=int, default=20261124, help="random seed of the data")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per case")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests per case first")
    parser.add_argument("--depth", type=int, default=10_000, help="leads before the deep page")
    parser.add_argument("--limit", type=int, default=50, help="page size")
    parser.add_argument(
        "--starts", type=int, default=20, help="starting points of the deep cases, spread over the walk's second half"
    )
    parser.add_argument(
        "--follow", type=int, default=10, help="pages a deep case follows next_cursor from each starting point"
    )
    parser.add_argument("--search-terms", type=int, default=5, help="search terms of each of the nine kinds")
    parser.add_argument("--log-level", default="INFO", help="the app's LOG_LEVEL (INFO keeps the access lines)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "leads.json", help="JSON results")
    parser.add_argument(
        "--plans", type=Path, default=ROOT / "bench" / "results" / "leads-plans.txt", help="EXPLAIN output"
    )
    parser.add_argument(
        "--quiet-cores",
        type=float,
        default=0.3,
        help="a case during which other processes used more cores than this is run again (see --retries)",
    )
    parser.add_argument("--retries", type=int, default=2, help="runs again of a disturbed case, the quietest kept")
    parser.add_argument(
        "--quiet-budget", type=float, default=900, help="seconds to wait for a quiet machine, in all (0: never)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    url: str = args.database_url
    if not url.startswith("postgresql+asyncpg://"):
        parser.error("--database-url must be postgresql+asyncpg://...")
    if "bench" not in database_name(url):
        parser.error("the database's name must contain 'bench' (it may be dropped and seeded)")

    import intake

    print(f"intake from {Path(intake.__file__).resolve().parent}")
    seed_info = prepare_database(url, args.reseed, args.leads, args.seed)
    facts = asyncio.run(db_facts(url, args.seed, args.search_terms))
    pg = asyncio.run(server_facts(url))
    print(
        f"{facts['leads']:,} leads, {facts['new']:,} new, {facts['new_urgent']:,} new+urgent; "
        f"PostgreSQL {pg['settings']['server_version']}, shared_buffers {pg['settings']['shared_buffers']}"
    )
    for term in facts["search_terms"]:
        print(f"  search term {term['label']:<18} q={term['q']!r:<24} {term['matches']:>7,} matches")

    server = Server(url, args.log_level)
    meter = CpuMeter(database_name(url))
    quiet = Quiet(meter, args.quiet_cores, args.quiet_budget, args.retries)

    def on_signal(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    try:
        server.start()
        print(f"server pid {server.pid()} on {server.base_url} (LOG_LEVEL={args.log_level}); measuring")
        meter.pids.append(server.process.pid if server.process else 0)
        token = login(server)
        cases, walks = http_cases(
            server, token, facts, args.depth, args.limit, args.warmup, args.requests, quiet, args.starts, args.follow
        )
    finally:
        server.stop()

    statements = asyncio.run(Statements.create(url))
    depth_of: dict[str, int] = walks["depth_of"]
    # Database only: the same statements keyset and OFFSET, at the walked depth and deeper.
    # The extra depths only show the trend: a few requests each (OFFSET 500,000 takes seconds).
    shapes: list[tuple[str, str, list[Any], int, int]] = []
    offsets = sorted({args.depth, 100_000, 500_000})
    for sort in SORTS:
        for offset in offsets:
            if offset + args.limit > facts["leads"]:
                continue
            reps = (args.warmup, args.requests) if offset == args.depth else (2, min(args.requests, 20))
            sql, params = statements.build({}, sort, None, args.limit, offset=offset)
            shapes.append((f"SQL {sort} OFFSET {offset:,}", sql, params, *reps))
            if offset == depth_of.get(sort):
                cursor = walks[sort]["cursor"]
            else:
                cursor = asyncio.run(_cursor_at(url, statements, sort, offset))
            sql, params = statements.build({}, sort, cursor, args.limit)
            shapes.append((f"SQL {sort} keyset at {offset:,}", sql, params, *reps))
    print(f"database only (asyncpg prepared statements, same SQL as the app; machine {quiet.wait()}):")
    db = asyncio.run(db_timings(url, shapes, meter))
    consistent: dict[str, bool] = {}
    for sort in SORTS:
        for offset in offsets:
            a, b = db.get(f"SQL {sort} OFFSET {offset:,}"), db.get(f"SQL {sort} keyset at {offset:,}")
            if a and b:
                consistent[f"{sort} {offset}"] = a["ids"] == b["ids"]
    for name, result in db.items():
        print(
            f"  {name:<40} p50 {result['p50']:7.2f} ms  p95 {result['p95']:7.2f} ms  "
            f"(others {result['other_cores']} cores)"
        )

    # The plans of every list shape the HTTP cases ran.
    plan_shapes: list[PlanShape] = []
    for sort in SORTS:
        sql, params = statements.build({}, sort, None, args.limit)
        plan_shapes.append(PlanShape(f"first page, {sort}", sql, params))
        if sort in walks:
            sql, params = statements.build({}, sort, walks[sort]["cursor"], args.limit)
            plan_shapes.append(PlanShape(f"page {depth_of[sort]:,} deep, {sort}", sql, params))
    for key, filters in (("new+urgent", {"status": "new", "tier": "urgent"}), ("triage", {"status": "new"})):
        sql, params = statements.build(filters, "urgency", None, args.limit)
        plan_shapes.append(PlanShape(f"{key}, first page", sql, params))
        if key in walks:
            sql, params = statements.build(filters, "urgency", walks[key]["cursor"], args.limit)
            plan_shapes.append(PlanShape(f"{key}, {depth_of[key]:,} deep", sql, params))
    searches = [statements.build({"q": t["q"]}, "urgency", None, args.limit) for t in facts["search_terms"]]
    for term, (sql, params) in zip(facts["search_terms"], searches, strict=True):
        plan_shapes.append(PlanShape(f"search {term['label']} q={term['q']!r}", sql, params, [p for _, p in searches]))
    for sort in SORTS:
        sql, params = statements.build({}, sort, None, args.limit, offset=args.depth)
        plan_shapes.append(PlanShape(f"OFFSET {args.depth:,}, {sort}", sql, params))
    args.plans.parent.mkdir(parents=True, exist_ok=True)
    plans_text, plans = asyncio.run(explain_all(url, plan_shapes))
    args.plans.write_text(plans_text)

    rows = table_rows(cases, {k: v for k, v in db.items()})
    print()
    print(
        f"p50/p95 of {args.requests} sequential requests per case after {args.warmup} warm-up; HTTP = client "
        "time over loopback (httpx keep-alive), app = the app's access-line ms (after authentication); "
        "asyncpg = database only; "
        "others = CPU cores other processes on the machine used meanwhile"
    )
    print_table(rows)
    print()
    print("plans (custom | prepared after 5 runs):")
    for name, kinds in plans.items():
        custom, prepared = kinds["custom"], kinds["prepared"]
        note = " (generic)" if prepared["generic"] else ""
        print(
            f"  {name:<48} {', '.join(custom['scans'])} {custom['execution_ms']} ms"
            f" | {', '.join(prepared['scans'])}{note} {prepared['execution_ms']} ms"
        )
    print(f"\nkeyset and OFFSET pages identical: {consistent}")
    print(f"walks without a repeated row: { {k: v['distinct_ids'] for k, v in walks.items() if k != 'depth_of'} }")
    missed = [r["case"] for r in rows if r["met"] is False and "part_of" not in r]
    report = {
        "benchmark": "bench/leads.py",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "database": {"name": database_name(url), **pg},
        "seed": seed_info,
        "facts": facts,
        "method": {
            "requests_per_case": args.requests,
            "warmup_per_case": args.warmup,
            "page_size": args.limit,
            "depth": args.depth,
            "deep_cases": f"{args.starts} starting points over the walk's second half, {args.follow} pages of "
            "next_cursor from each",
            "search_terms_per_kind": args.search_terms,
            "client": "httpx.Client keep-alive, sequential, loopback",
            "server": "uvicorn, 1 worker, INTAKE_ENV=production, LOG_FORMAT=json, LOG_LEVEL=" + args.log_level,
            "app_ms": "the `ms` of the app's http.request access line: the handling after authentication "
            "(the JWT middleware, with its two queries, runs outside it)",
            "other_cores": "CPU cores used meanwhile by processes other than the client, the server and the "
            "database's backends (from /proc); a case over --quiet-cores is run again, the quietest kept",
            "quiet_cores": args.quiet_cores,
            "quiet_budget_s": args.quiet_budget,
            "retries": args.retries,
        },
        "targets": {"list_p95_ms": LIST_TARGET_MS, "search_p95_ms": SEARCH_TARGET_MS},
        "results": rows,
        "walks": walks,
        "keyset_equals_offset": consistent,
        "plans": plans,
        "plans_file": str(args.plans),
        "missed": missed,
    }
    for result in db.values():
        result.pop("ids", None)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwritten: {args.output} and {args.plans}")
    print(f"targets missed: {', '.join(missed)}" if missed else "all targets met")
    print(f"the seeded database {database_name(url)} is kept for the next run (--reseed to redo it)")
    return 1 if args.check and missed else 0


async def _cursor_at(url: str, statements: Statements, sort: Sort, offset: int) -> str:
    """The cursor the API would hand out after `offset` rows of the unfiltered list."""
    import asyncpg

    from intake import keyset

    sql, params = statements.build({}, sort, None, 0, offset=offset - 1)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        row = (await conn.fetch(sql, *params))[0]
    finally:
        await conn.close()
    key = (row["urgency"], row["created_at"], row["id"]) if sort == "urgency" else (row["created_at"], row["id"])
    return str(keyset.encode(sort, key))


if __name__ == "__main__":
    sys.exit(main())
