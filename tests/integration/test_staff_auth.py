"""Staff sign-in: the create-staff command, tokens, logout, lockout, disabled accounts, rehashing."""

from __future__ import annotations

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
from tests.staff_fixtures import PASSWORD

Client = AsyncTestClient[Any]


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
