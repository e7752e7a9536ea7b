"""The intake's in-process rate limiter answers exactly as Litestar's own RateLimitMiddleware does."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar, post
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.testing import TestClient

from intake.leads import rate_limit

LIMIT = 3


@post("/submit", status_code=201)
async def submit() -> dict[str, str]:
    return {"ok": "yes"}


def _app(fast: bool) -> Litestar:
    config = RateLimitConfig(rate_limit=("minute", LIMIT), store=f"limit-{fast}")
    middleware = DefineMiddleware(rate_limit.InProcessRateLimit, config=config) if fast else config.middleware
    return Litestar([submit], middleware=[middleware])


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _answers(fast: bool, clock: Clock, script: list[float]) -> list[tuple[int, dict[str, str]]]:
    """Status and RateLimit headers of one request after each pause (seconds) in `script`."""
    seen = []
    with TestClient(_app(fast)) as client:
        for pause in script:
            clock.now += pause
            response = client.post("/submit")
            headers = {k.lower(): v for k, v in response.headers.items() if k.lower().startswith("ratelimit")}
            seen.append((response.status_code, headers))
    return seen


@pytest.mark.parametrize(
    "script",
    [
        [0, 0, 0, 0, 0],  # over the limit at once
        [0, 10, 10, 10, 31],  # refused at 30 s, let through again once the minute is over
        [0, 59, 2, 0, 0, 0, 0],  # a new window starts with the first request after the old one ended
    ],
)
def test_the_fast_path_answers_as_litestar_does(monkeypatch: Any, script: list[float]) -> None:
    clock = Clock()
    # Litestar's middleware and the store it uses read the clock by different names; all of them move together.
    monkeypatch.setattr("litestar.middleware.rate_limit.time", clock)
    monkeypatch.setattr("litestar.stores.memory.time", clock, raising=False)
    monkeypatch.setattr(rate_limit, "time", clock)
    library = _answers(False, clock, script)
    clock.now = 1_800_000_000.0
    fast = _answers(True, clock, script)
    assert fast == library
    assert 429 in [status for status, _ in fast]  # the scripts do reach the limit


def test_ended_windows_are_forgotten() -> None:
    middleware = rate_limit.InProcessRateLimit(submit, RateLimitConfig(rate_limit=("minute", LIMIT)))  # type: ignore[arg-type]
    for n in range(rate_limit._PURGE_EVERY - 1):
        middleware._count(f"client-{n}", now=1000)
    assert len(middleware._windows) == rate_limit._PURGE_EVERY - 1
    middleware._count("late", now=1000 + 61)  # the 1024th request: every earlier window has ended
    assert list(middleware._windows) == ["late"]
