"""A login flood does not stall the API: argon2 runs off the event loop, so /health stays fast."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.services import serve

pytestmark = pytest.mark.slow

EMAIL = "flood@clinic.example.com"
PASSWORD = "seven amber kites over the dune"
LOOPS = 16


async def _health_ms(client: httpx.AsyncClient, samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        assert (await client.get("/health")).status_code == 200
        times.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.05)
    return times


async def _flood(base_url: str) -> tuple[float, float, int]:
    """Median /health alone, median /health while LOOPS clients sign in back to back, and sign-ins done."""
    limits = httpx.Limits(max_connections=LOOPS + 2)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        quiet = statistics.median(await _health_ms(client, 30))
        stop = asyncio.Event()
        done = 0

        async def sign_in_loop() -> None:
            nonlocal done
            while not stop.is_set():
                response = await client.post("/api/auth/login", json={"email": EMAIL, "password": PASSWORD})
                assert response.status_code == 200, response.text
                done += 1

        loops = [asyncio.create_task(sign_in_loop()) for _ in range(LOOPS)]
        await asyncio.sleep(1.0)  # every loop has a sign-in in flight
        busy = statistics.median(await _health_ms(client, 40))
        stop.set()
        await asyncio.gather(*loops)
    return quiet, busy, done


def test_health_stays_fast_while_sixteen_clients_sign_in(tmp_path: Path) -> None:
    limits_off = {"LOGIN_RATE_LIMIT_PER_MINUTE": "0", "LOGIN_ACCOUNT_RATE_LIMIT_PER_MINUTE": "0", "LOG_LEVEL": "INFO"}
    for served in serve(tmp_path, limits_off):
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "INTAKE_ENV"}}
        made = subprocess.run(
            [sys.executable, "-m", "intake.cli", "create-staff", EMAIL, "--role", "front_desk"],
            input=f"{PASSWORD}\n",
            env={**env, "INTAKE_DATA_DIR": str(tmp_path / "data")},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert made.returncode == 0, made.stderr
        quiet, busy, done = asyncio.run(_flood(served.base_url))
    print(f"\n/health median: {quiet:.1f} ms alone, {busy:.1f} ms during {LOOPS} login loops ({done} sign-ins)")
    assert done > LOOPS  # the flood was real: every loop signed in, most more than once
    assert busy < 50, f"/health median {busy:.1f} ms during the login flood (alone: {quiet:.1f} ms)"
