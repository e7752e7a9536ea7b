"""Sign-in is limited per client address and per account: a 429 that says when to come back."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.app import create_app
from intake.db.models import StaffMember
from intake.settings import Settings
from intake.staff.throttle import LoginThrottle
from tests.staff_fixtures import PASSWORD, make_staff


async def _limited(settings: Settings, per_address: int, per_account: int) -> AsyncIterator[AsyncTestClient[Any]]:
    auth = dataclasses.replace(
        settings.auth, login_rate_limit_per_minute=per_address, login_account_rate_limit_per_minute=per_account
    )
    async with AsyncTestClient(app=create_app(dataclasses.replace(settings, auth=auth))) as client:
        yield client


@pytest.fixture
async def per_account(settings: Settings, db: AsyncEngine) -> AsyncIterator[AsyncTestClient[Any]]:
    async for client in _limited(settings, per_address=100, per_account=4):
        yield client


@pytest.fixture
async def per_address(settings: Settings, db: AsyncEngine) -> AsyncIterator[AsyncTestClient[Any]]:
    async for client in _limited(settings, per_address=5, per_account=100):
        yield client


def _refused_for_a_while(response: Any) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["status_code"] == 429
    assert 0 < int(response.headers["Retry-After"]) <= 60


async def test_one_account_gets_a_few_attempts_a_minute(
    per_account: AsyncTestClient[Any], settings: Settings, db: AsyncEngine
) -> None:
    await make_staff(settings, per_account)  # signs each role in once
    login = {"email": "front_desk@clinic.example.com", "password": "not the password at all"}
    for _ in range(3):
        assert (await per_account.post("/api/auth/login", json=login)).status_code == 401
    _refused_for_a_while(await per_account.post("/api/auth/login", json=login))
    _refused_for_a_while(await per_account.post("/api/auth/login", json={**login, "password": PASSWORD}))
    # Another account from the same address is not held back.
    other = {"email": "admin@clinic.example.com", "password": PASSWORD}
    assert (await per_account.post("/api/auth/login", json=other)).status_code == 200
    # Refused attempts were never tried: the account counted 3 failures, not 5.
    async with db.connect() as connection:
        failed = (
            await connection.execute(
                select(StaffMember.failed_logins).where(StaffMember.email == "front_desk@clinic.example.com")
            )
        ).scalar_one()
    assert failed == 3


async def test_one_address_gets_a_few_attempts_a_minute(per_address: AsyncTestClient[Any]) -> None:
    for n in range(5):
        login = {"email": f"nobody{n}@clinic.example.com", "password": "not the password at all"}
        assert (await per_address.post("/api/auth/login", json=login)).status_code == 401
    login = {"email": "someone.else@clinic.example.com", "password": "not the password at all"}
    _refused_for_a_while(await per_address.post("/api/auth/login", json=login))


def test_the_limits_start_again_after_a_minute_and_zero_is_no_limit() -> None:
    now = [0.0]
    throttle = LoginThrottle(per_address=2, per_account=0, clock=lambda: now[0])
    assert throttle.attempt(address="10.0.0.1", account="a@x") is None
    assert throttle.attempt(address="10.0.0.1", account="b@x") is None
    assert throttle.attempt(address="10.0.0.1", account="c@x") == 60
    assert throttle.attempt(address="10.0.0.2", account="c@x") is None  # another address
    now[0] = 45.5
    assert throttle.attempt(address="10.0.0.1", account="c@x") == 15
    now[0] = 60.0
    assert throttle.attempt(address="10.0.0.1", account="c@x") is None
