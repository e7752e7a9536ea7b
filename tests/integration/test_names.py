"""Names are stored in NFC, and refused when they hold control characters or no letter at all."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.db.models import Lead, StaffMember
from tests.conftest import count_rows
from tests.factories import submission

Client = AsyncTestClient[Any]


def fields(response: Any) -> list[str]:
    return [e["field"] for e in response.json()["errors"]]


@pytest.mark.parametrize(
    "first_name",
    ["Ana\x00", "\u202eanA", "\u200b\u200b", "Ana\r\nBcc: x@example.com", "\u200d", "Ana\tMaria", " \u2028 "],
)
async def test_names_with_control_or_only_invisible_characters_are_refused(
    client: Client, db: AsyncEngine, first_name: str
) -> None:
    response = await client.post("/api/intake", json=submission(first_name=first_name))
    assert response.status_code == 422, response.text
    assert "contact.first_name" in fields(response)
    assert await count_rows(db, "leads") == 0


async def test_names_are_stored_in_nfc(client: Client, db: AsyncEngine) -> None:
    decomposed = "Jose\u0301"  # e + combining acute accent
    response = await client.post("/api/intake", json=submission(first_name=decomposed, last_name=" Nun\u0303ez "))
    assert response.status_code == 201, response.text
    async with db.connect() as connection:
        first, last = (await connection.execute(select(Lead.first_name, Lead.last_name))).one()
    assert (first, last) == ("Jos\u00e9", "Nu\u00f1ez")


async def test_names_with_letters_joined_by_zero_width_joiners_are_kept(client: Client) -> None:
    response = await client.post("/api/intake", json=submission(first_name="\u0645\u200c\u0646"))
    assert response.status_code == 201, response.text


async def test_staff_names_are_checked_too(client: Client, staff: Any, db: AsyncEngine) -> None:
    body = {"email": "new@clinic.example.com", "role": "front_desk", "password": "a long enough password"}
    refused = await client.post("/api/staff", json={**body, "name": "\u202eNimda"}, headers=staff["admin"])
    assert refused.status_code == 422, refused.text
    assert fields(refused) == ["name"]
    created = await client.post("/api/staff", json={**body, "name": "Rene\u0301"}, headers=staff["admin"])
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "Ren\u00e9"
    renamed = await client.patch(f"/api/staff/{created.json()['id']}", json={"name": "\x07"}, headers=staff["admin"])
    assert renamed.status_code == 422, renamed.text
    async with db.connect() as connection:
        names = set((await connection.execute(select(StaffMember.name))).scalars())
    assert "Ren\u00e9" in names
