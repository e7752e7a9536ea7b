"""The rate limit's client: X-Forwarded-For is believed only from FORWARDED_ALLOW_IPS (none by default)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.app import create_app
from intake.settings import Settings
from tests.factories import submission
from tests.services import serve

Client = AsyncTestClient[Any]


@pytest.fixture
async def limited(settings: Settings, db: AsyncEngine, request: pytest.FixtureRequest) -> AsyncIterator[Client]:
    trusted = getattr(request, "param", ())
    intake = dataclasses.replace(settings.intake, rate_limit_per_minute=2, trusted_proxies=trusted)
    async with AsyncTestClient(app=create_app(dataclasses.replace(settings, intake=intake))) as client:
        yield client


async def test_x_forwarded_for_from_an_untrusted_peer_does_not_reset_the_limit(limited: Client) -> None:
    for n in range(2):
        assert (await limited.post("/api/intake", json=submission(email=f"p{n}@example.com"))).status_code == 201
    for n in range(5):
        spoofed = {"X-Forwarded-For": f"198.51.100.{n}"}
        response = await limited.post("/api/intake", json=submission(email=f"s{n}@example.com"), headers=spoofed)
        assert response.status_code == 429, response.text


@pytest.mark.parametrize("limited", [("testclient",)], indirect=True)
async def test_x_forwarded_for_from_a_trusted_proxy_names_the_client(limited: Client) -> None:
    for n in range(2):
        assert (await limited.post("/api/intake", json=submission(email=f"p{n}@example.com"))).status_code == 201
    refused = await limited.post("/api/intake", json=submission(email="p9@example.com"))
    assert refused.status_code == 429
    for n in range(3):
        forwarded = {"X-Forwarded-For": f"198.51.100.{n}"}
        response = await limited.post("/api/intake", json=submission(email=f"c{n}@example.com"), headers=forwarded)
        assert response.status_code == 201, response.text


@pytest.mark.slow
def test_intake_serve_ignores_x_forwarded_for_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn's own default trusts loopback, where every client of the embedded default comes from."""
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)  # the default, as `make run` has it
    for served in serve(tmp_path, {"INTAKE_RATE_LIMIT_PER_MINUTE": "2"}):
        url = f"{served.base_url}/api/intake"
        for n in range(2):
            assert httpx.post(url, json=submission(email=f"p{n}@example.com"), timeout=10).status_code == 201
        statuses = [
            httpx.post(
                url,
                json=submission(email=f"s{n}@example.com"),
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
                timeout=10,
            ).status_code
            for n in range(5)
        ]
        assert statuses == [429] * 5, served.logs()[-2000:]
