"""A burst of concurrent screens on the embedded default: every one stored and answered 201.

What it does, from the repository root (`python bench/burst.py`, or `python -m bench.burst`):

1. Starts `intake serve` as `make run` does, on the embedded default (SQLite, the filesystem broker,
   the worker with the scheduler inside it as a child process), in a fresh data folder, with the
   per-client submission limit off (all the load comes from one address).
2. Sends `--count` submissions (default 200) at the same moment, each from a different person
   (one in four a seek-care-now screen, so the worker sends emails and alerts meanwhile), one
   connection each.
3. Waits until the worker has written every email, then checks: every answer was 201, the database
   holds one lead and one screening per person, and nothing in the server's or the worker's log says
   "database is locked".

Printed: the answers by status, and the latency of the burst's requests (p50, p95, p99, max) as the
client saw them, from the moment all were sent together. `--rounds` repeats the whole run.
Exit status 1 when a check fails.

    python bench/burst.py
    python bench/burst.py --count 400 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# Run as a script, this folder comes first on sys.path and bench/intake.py would shadow the `intake`
# package (which `intake serve` imports in its own process): drop it, and add the repository.
_HERE = Path(__file__).resolve().parent
if sys.path and sys.path[0] and Path(sys.path[0]).resolve() == _HERE:
    sys.path.pop(0)
if str(_HERE.parent) not in sys.path:
    sys.path.append(str(_HERE.parent))

from bench.support import (  # noqa: E402 - after the path is set
    descendants,
    free_port,
    machine_busy,
    process_cpu,
    stop_process,
    summary,
    wait_for,
)

ROUTINE = {"pain_area": ["lower_back"], "pain_now": 4, "duration": "under_24h", "injury": "none", "improving": "better"}
EMERGENCY = {**ROUTINE, "bladder_bowel": True, "pain_now": 8}


def person(n: int, run: str) -> dict[str, Any]:
    """The n-th person's screen: a new email each (so each is a new lead); every fourth is an emergency."""
    return {
        "language": "es" if n % 3 == 0 else "en",
        "contact": {
            "first_name": "Burst",
            "last_name": f"Person {n}",
            "email": f"burst.{run}.{n}@example.com",
            "phone": None,
            "preferred_contact": "email",
            "location": "boca_raton",
            "zip": "33431",
        },
        "consent": {"privacy": True, "email_followup": True, "sms": False},
        "answers": {**(EMERGENCY if n % 4 == 0 else ROUTINE), "age": 30 + n % 40},
    }


def emails_expected(count: int) -> int:
    """A seek-care-now screen gets the patient's email and the staff alert; a routine one, the invitation."""
    emergencies = len(range(0, count, 4))
    return 2 * emergencies + (count - emergencies)


@dataclass
class Burst:
    statuses: list[int]
    latencies_ms: list[float]
    """Each request's time from the burst's start to its answer, in milliseconds."""
    wall_s: float
    others_cores: float = 0.0
    """Cores that processes other than intake serve, its worker and this client used meanwhile."""

    @property
    def by_status(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for status in self.statuses:
            counts[status] = counts.get(status, 0) + 1
        return dict(sorted(counts.items()))


async def burst(base_url: str, count: int, run: str | None = None, request_timeout: float = 120) -> Burst:
    """POST `count` screens to /api/intake at once, one connection each; every status and latency."""
    run = run or secrets.token_hex(3)
    bodies = [person(n, run) for n in range(count)]
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=request_timeout) as client:
        gate = asyncio.Event()

        async def one(body: dict[str, Any]) -> tuple[int, float]:
            await gate.wait()
            started = time.perf_counter()
            response = await client.post("/api/intake", json=body)
            return response.status_code, (time.perf_counter() - started) * 1000

        tasks = [asyncio.create_task(one(body)) for body in bodies]
        await asyncio.sleep(0.05)  # every task is waiting at the gate
        started = time.perf_counter()
        gate.set()
        results = await asyncio.gather(*tasks)
        wall = time.perf_counter() - started
    return Burst([s for s, _ in results], [ms for _, ms in results], wall)


def stored(database: Path) -> tuple[int, int]:
    """Leads and screenings in the SQLite file."""
    with sqlite3.connect(database) as connection:
        leads = connection.execute("SELECT count(*) FROM leads").fetchone()[0]
        screenings = connection.execute("SELECT count(*) FROM screenings").fetchone()[0]
    return int(leads), int(screenings)


def serve_embedded(
    data_dir: Path, log_path: Path, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """`intake serve` on the embedded default (nothing configured but the data folder), ready."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SMTP_HOST", "INTAKE_ENV"}}
    env.update({"INTAKE_DATA_DIR": str(data_dir), "INTAKE_RATE_LIMIT_PER_MINUTE": "0", **(extra_env or {})})
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "intake.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"intake serve exited early:\n{log_path.read_text(errors='replace')[-3000:]}")
        try:
            return httpx.get(f"{base_url}/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(ready, 60, "intake serve to be ready", interval=0.2)
    return process, base_url


def run_once(count: int, folder: Path) -> tuple[Burst, list[str]]:
    """One burst against a fresh `intake serve`; the burst and the checks that failed."""
    data, log_path = folder / "data", folder / "serve.log"
    process, base_url = serve_embedded(data, log_path)
    try:
        # The worker is up when beat has sent its first sweep; give it a moment, as a real start would.
        time.sleep(1.0)
        served = [process.pid, *descendants(process.pid)]
        machine, ours = machine_busy(), sum(map(process_cpu, served)) + time.process_time()
        result = asyncio.run(burst(base_url, count))
        ours = sum(map(process_cpu, served)) + time.process_time() - ours
        result.others_cores = max(0.0, machine_busy() - machine - ours) / result.wall_s
        expected = emails_expected(count)
        emails = data / "emails"
        try:
            wait_for(lambda: len(list(emails.glob("*.eml"))) >= expected, 180, f"{expected} emails", interval=0.5)
        except TimeoutError as exc:
            print(f"  {exc}", flush=True)
    finally:
        stop_process(process, timeout=30)
    failures = []
    if result.by_status != {201: count}:
        failures.append(f"answers by status: {result.by_status}")
    leads, screenings = stored(data / "intake.db")
    if (leads, screenings) != (count, count):
        failures.append(f"stored {leads} leads and {screenings} screenings of {count}")
    written = len(list((data / "emails").glob("*.eml")))
    if written != emails_expected(count):
        failures.append(f"the worker wrote {written} emails of {emails_expected(count)}")
    logs = log_path.read_text(errors="replace")
    # Error lines name the exception class, never its message: "database is locked" is an OperationalError.
    if "database is locked" in logs or "OperationalError" in logs or "retry_after_busy" in logs:
        failures.append("the log says the database was locked")
    return result, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="submissions sent at once (default 200)")
    parser.add_argument("--rounds", type=int, default=1, help="fresh servers, one burst each (default 1)")
    args = parser.parse_args()
    failed = False
    print(f"intake serve (embedded default: SQLite, filesystem broker, worker and beat), {args.count} at once")
    for round_ in range(1, args.rounds + 1):
        with tempfile.TemporaryDirectory(prefix="intake-burst-") as folder:
            result, failures = run_once(args.count, Path(folder))
        s = summary(result.latencies_ms)
        print(
            f"round {round_}: {result.by_status} in {result.wall_s:.2f} s; latency ms "
            f"p50 {s['p50']}, p95 {s['p95']}, p99 {s['p99']}, max {s['max']}; "
            f"other processes used {result.others_cores:.2f} cores",
            flush=True,
        )
        for failure in failures:
            print(f"  FAILED: {failure}", flush=True)
        failed = failed or bool(failures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
