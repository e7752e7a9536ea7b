"""Screen submissions are limited per client address: a 429 that says when to come back, nothing stored."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.app import create_app
from intake.settings import Settings
from tests.conftest import count_rows
from tests.factories import submission


@pytest.fixture
async def limited(settings: Settings, db: AsyncEngine) -> AsyncIterator[AsyncTestClient[Any]]:
    limited = dataclasses.replace(settings, intake=dataclasses.replace(settings.intake, rate_limit_per_minute=3))
    async with AsyncTestClient(app=create_app(limited)) as client:
        yield client


async def test_the_submission_over_the_limit_gets_429_and_stores_nothing(
    limited: AsyncTestClient[Any], db: AsyncEngine
) -> None:
    for n in range(3):
        response = await limited.post("/api/intake", json=submission(email=f"person{n}@example.com"))
        assert response.status_code == 201, response.text
    refused = await limited.post("/api/intake", json=submission(email="one.too.many@example.com"))
    assert refused.status_code == 429
    assert refused.json()["status_code"] == 429 and "try again" in refused.json()["detail"]
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert await count_rows(db, "screenings") == 3
    assert await count_rows(db, "outbox_messages") == 3


async def test_reading_the_questionnaire_is_not_limited(limited: AsyncTestClient[Any]) -> None:
    for _ in range(5):
        assert (await limited.get("/api/intake/questionnaire")).status_code == 200
    assert (await limited.post("/api/intake", json=submission())).status_code == 201
