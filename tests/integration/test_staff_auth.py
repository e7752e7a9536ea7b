"""Staff sign-in: the create-staff command, tokens, logout, lockout (under concurrent guesses too), disabled
accounts, rehashing, password changes ending earlier tokens, weak passwords refused."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from litestar.testing import AsyncTestClient
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.db.models import StaffMember
from intake.settings import Settings
from tests.in_loop import served_in_this_loop
from tests.staff_fixtures import PASSWORD, make_staff

Client = AsyncTestClient[Any]
NEW_PASSWORD = "violet lantern across the quiet harbor"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _login(client: Client, email: str, password: str = PASSWORD) -> Any:
    return await client.post("/api/auth/login", json={"email": email, "password": password})


@pytest.mark.slow  # three `intake create-staff` processes
def test_create_staff_reads_the_password_from_stdin(database_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "INTAKE_DATA_DIR": str(tmp_path),
        "PUBLIC_BASE_URL": "https://intake.clinic.example",
    }
    command = [
        sys.executable,
        "-m",
        "intake.cli",
        "create-staff",
        "Desk@Clinic.example.com",
        "--role",
        "front_desk",
    ]
    made = subprocess.run(
        command, input=f"{PASSWORD}\n", env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert made.returncode == 0, made.stderr
    assert "created front_desk" in made.stdout
    again = subprocess.run(
        command, input=f"{PASSWORD}\n", env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert again.returncode != 0 and "already exists" in again.stderr
    weak = subprocess.run(
        [*command[:-3], "x@clinic.example.com", "--role", "admin"],
        input="short\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert weak.returncode != 0 and "password" in weak.stderr


async def test_login_token_me_and_logout(client: Client, staff: Any) -> None:
    me = await client.get("/api/auth/me", headers=staff["clinician"])
    assert me.status_code == 200 and me.json()["role"] == "clinician"
    login = (await _login(client, "clinician@clinic.example.com")).json()
    assert login["token_type"] == "bearer" and 0 < login["expires_in"] <= 3600
    headers = {"Authorization": f"Bearer {login['access_token']}"}
    assert (await client.post("/api/auth/logout", headers=headers)).status_code == 204
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 401
    assert (await client.get("/api/auth/me", headers=staff["clinician"])).status_code == 200  # other tokens live on
    assert (await client.get("/api/auth/me", headers={"Authorization": "Bearer not-a-token"})).status_code == 401


async def test_ten_failures_lock_the_account_for_fifteen_minutes(client: Client, staff: Any, db: AsyncEngine) -> None:
    for _ in range(10):
        assert (await _login(client, "front_desk@clinic.example.com", "wrong password!")).status_code == 401
    assert (await _login(client, "front_desk@clinic.example.com")).status_code == 401  # right password, locked
    async with db.begin() as connection:
        locked_until = (
            await connection.execute(
                select(StaffMember.locked_until).where(StaffMember.email == "front_desk@clinic.example.com")
            )
        ).scalar_one()
        assert locked_until is not None
        await connection.execute(
            text("UPDATE staff_members SET locked_until = NULL WHERE email = 'front_desk@clinic.example.com'")
        )
    assert (await _login(client, "front_desk@clinic.example.com")).status_code == 200


async def test_disabled_accounts_cannot_sign_in_or_use_tokens(client: Client, staff: Any) -> None:
    response = await client.patch(
        f"/api/staff/{staff.ids['front_desk']}", json={"disabled": True}, headers=staff["admin"]
    )
    assert response.status_code == 200 and response.json()["disabled"] is True
    assert (await _login(client, "front_desk@clinic.example.com")).status_code == 401
    assert (await client.get("/api/triage-queue", headers=staff["front_desk"])).status_code == 401


async def test_password_is_rehashed_when_parameters_change(client: Client, staff: Any, db: AsyncEngine) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    async with db.begin() as connection:
        await connection.execute(
            update(StaffMember).where(StaffMember.email == "clinician@clinic.example.com").values(password_hash=weak)
        )
    assert (await _login(client, "clinician@clinic.example.com")).status_code == 200
    async with db.connect() as connection:
        stored = (
            await connection.execute(
                select(StaffMember.password_hash).where(StaffMember.email == "clinician@clinic.example.com")
            )
        ).scalar_one()
    assert stored != weak and stored.startswith("$argon2id$")


async def test_admin_manages_staff_but_not_themselves_out(client: Client, staff: Any) -> None:
    created = await client.post(
        "/api/staff",
        headers=staff["admin"],
        json={
            "email": "new.pt@clinic.example.com",
            "name": "New PT",
            "role": "clinician",
            "password": "a long enough password",
        },
    )
    assert created.status_code == 201, created.text
    duplicate = await client.post(
        "/api/staff",
        headers=staff["admin"],
        json={
            "email": "NEW.pt@clinic.example.com",
            "name": "Again",
            "role": "clinician",
            "password": "a long enough password",
        },
    )
    assert duplicate.status_code == 409
    bad = await client.post(
        "/api/staff",
        headers=staff["admin"],
        json={
            "email": "x@clinic.example.com",
            "name": "X",
            "role": "janitor",
            "password": "a long enough password",
        },
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "role"
    promoted = await client.patch(f"/api/staff/{created.json()['id']}", headers=staff["admin"], json={"role": "admin"})
    assert promoted.json()["role"] == "admin"
    self_demote = await client.patch(
        f"/api/staff/{staff.ids['admin']}", headers=staff["admin"], json={"role": "front_desk"}
    )
    assert self_demote.status_code == 422
    listing = (await client.get("/api/staff", headers=staff["admin"])).json()
    assert {m["email"] for m in listing} >= {"new.pt@clinic.example.com", "admin@clinic.example.com"}
    assert all("password" not in key for m in listing for key in m)


async def _locked_until(db: AsyncEngine, email: str) -> Any:
    async with db.connect() as connection:
        return (
            await connection.execute(select(StaffMember.locked_until).where(StaffMember.email == email))
        ).scalar_one()


async def _end_the_lock(db: AsyncEngine, email: str) -> None:
    async with db.begin() as connection:
        await connection.execute(
            update(StaffMember)
            .where(StaffMember.email == email)
            .values(locked_until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )


async def test_forty_concurrent_wrong_guesses_lock_the_account(settings: Settings, db: AsyncEngine) -> None:
    """Counted atomically: no guess is lost to another's read-modify-write, on either database."""
    email = "front_desk@clinic.example.com"
    async with served_in_this_loop(settings) as (client, in_flight):
        await make_staff(settings, client)  # type: ignore[arg-type]
        in_flight.most = 0
        guesses = await asyncio.gather(*(_login(client, email, f"wrong guess number {n}") for n in range(40)))
        assert in_flight.most > 1, "the guesses did not overlap"
        assert {g.status_code for g in guesses} == {401}
        assert await _locked_until(db, email) is not None
        assert (await _login(client, email)).status_code == 401  # the right password, refused while locked
        await _end_the_lock(db, email)
        assert (await _login(client, email)).status_code == 200


async def test_every_one_of_concurrent_wrong_guesses_is_counted(settings: Settings, db: AsyncEngine) -> None:
    """With a threshold of 40, 39 guesses at once leave a count of exactly 39, and the 40th locks."""
    email = "admin@clinic.example.com"
    strict = dataclasses.replace(settings, auth=dataclasses.replace(settings.auth, lockout_threshold=40))
    async with served_in_this_loop(strict) as (client, in_flight):
        await make_staff(strict, client)  # type: ignore[arg-type]
        in_flight.most = 0
        await asyncio.gather(*(_login(client, email, f"wrong guess number {n}") for n in range(39)))
        assert in_flight.most > 1, "the guesses did not overlap"
        async with db.connect() as connection:
            failed = (
                await connection.execute(select(StaffMember.failed_logins).where(StaffMember.email == email))
            ).scalar_one()
        assert failed == 39
        assert await _locked_until(db, email) is None
        assert (await _login(client, email, "wrong guess number 40")).status_code == 401
        assert await _locked_until(db, email) is not None


async def test_the_right_password_in_a_burst_of_guesses_does_not_keep_the_account_open(
    settings: Settings, db: AsyncEngine
) -> None:
    email = "clinician@clinic.example.com"
    async with served_in_this_loop(settings) as (client, in_flight):
        await make_staff(settings, client)  # type: ignore[arg-type]
        in_flight.most = 0
        attempts = [_login(client, email, f"wrong guess number {n}") for n in range(39)]
        attempts.insert(20, _login(client, email))
        await asyncio.gather(*attempts)
        assert in_flight.most > 1, "the attempts did not overlap"
        # Whenever the right one came, the 29+ wrong ones after or before it reached the threshold.
        assert await _locked_until(db, email) is not None
        assert (await _login(client, email)).status_code == 401


async def test_a_password_change_by_an_admin_ends_the_tokens_issued_before(client: Client, staff: Any) -> None:
    earlier = (await _login(client, "front_desk@clinic.example.com")).json()["access_token"]
    changed = await client.patch(
        f"/api/staff/{staff.ids['front_desk']}", json={"password": NEW_PASSWORD}, headers=staff["admin"]
    )
    assert changed.status_code == 200, changed.text
    for token in (earlier, staff["front_desk"]["Authorization"].split()[1]):
        assert (await client.get("/api/auth/me", headers=_bearer(token))).status_code == 401
    assert (await _login(client, "front_desk@clinic.example.com")).status_code == 401  # the old password
    fresh = await _login(client, "front_desk@clinic.example.com", NEW_PASSWORD)
    assert fresh.status_code == 200
    assert (await client.get("/api/auth/me", headers=_bearer(fresh.json()["access_token"]))).status_code == 200
    assert (await client.get("/api/auth/me", headers=staff["clinician"])).status_code == 200  # others live on


async def test_a_password_change_by_the_person_ends_their_earlier_tokens(client: Client, staff: Any) -> None:
    earlier = (await _login(client, "clinician@clinic.example.com")).json()["access_token"]
    wrong = await client.post(
        "/api/auth/password",
        json={"current_password": "not my password at all", "new_password": NEW_PASSWORD},
        headers=staff["clinician"],
    )
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "current_password"
    changed = await client.post(
        "/api/auth/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=staff["clinician"],
    )
    assert changed.status_code == 200, changed.text
    for token in (earlier, staff["clinician"]["Authorization"].split()[1]):
        assert (await client.get("/api/auth/me", headers=_bearer(token))).status_code == 401
    mine = _bearer(changed.json()["access_token"])
    assert (await client.get("/api/auth/me", headers=mine)).status_code == 200
    assert (await _login(client, "clinician@clinic.example.com", NEW_PASSWORD)).status_code == 200


@pytest.mark.parametrize(
    "weak",
    ["aaaaaaaaaaaa", " " * 12, "password1234", "new.pt@clinic.example.com", "my name is new.pt, hi"],
)
async def test_weak_passwords_are_refused(client: Client, staff: Any, weak: str) -> None:
    created = await client.post(
        "/api/staff",
        headers=staff["admin"],
        json={"email": "new.pt@clinic.example.com", "name": "New PT", "role": "clinician", "password": weak},
    )
    assert created.status_code == 422, created.text
    assert [e["field"] for e in created.json()["errors"]] == ["password"]


async def test_a_weak_new_password_is_refused_by_admin_and_self_service(client: Client, staff: Any) -> None:
    by_admin = await client.patch(
        f"/api/staff/{staff.ids['front_desk']}", json={"password": "front_desk1234"}, headers=staff["admin"]
    )
    assert by_admin.status_code == 422 and by_admin.json()["errors"][0]["field"] == "password"
    by_self = await client.post(
        "/api/auth/password",
        json={"current_password": PASSWORD, "new_password": "qwertyuiop123"},
        headers=staff["front_desk"],
    )
    assert by_self.status_code == 422 and by_self.json()["errors"][0]["field"] == "new_password"
    assert (await client.get("/api/auth/me", headers=staff["front_desk"])).status_code == 200  # nothing changed
