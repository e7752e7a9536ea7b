"""Times from clients need their UTC offset and a year from 1900 to 2999: 422 naming the field, never a 500."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from intake.settings import Settings
from tests.booking_fixtures import new_lead, token_for

Client = AsyncTestClient[Any]
EARLY = "0001-01-01T00:00:00+14:00"
LATE = "9999-12-31T23:59:59-14:00"
NAIVE = "2026-11-20T09:00:00"


def fields(response: Any) -> list[str]:
    return [e["field"] for e in response.json()["errors"]]


async def test_naive_datetimes_in_list_export_and_audit_filters_are_422(client: Client, staff: Any) -> None:
    leads = await client.get("/api/leads", params={"created_from": NAIVE}, headers=staff["front_desk"])
    assert leads.status_code == 422, leads.text
    assert fields(leads) == ["created_from"]
    export = await client.get("/api/leads/export.csv", params={"created_to": NAIVE}, headers=staff["clinician"])
    assert export.status_code == 422, export.text
    assert fields(export) == ["created_to"]
    audit = await client.get("/api/audit", params={"from": NAIVE, "to": NAIVE}, headers=staff["admin"])
    assert audit.status_code == 422, audit.text
    assert fields(audit) == ["from", "to"]
    # With an offset, the same filters work.
    ok = await client.get("/api/leads", params={"created_from": NAIVE + "-05:00"}, headers=staff["front_desk"])
    assert ok.status_code == 200, ok.text


async def test_a_forged_cursor_with_a_naive_time_is_422_naming_the_cursor(client: Client, staff: Any) -> None:
    raw = json.dumps({"s": "newest", "k": [NAIVE, str(uuid.uuid4())]}).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    response = await client.get("/api/leads", params={"sort": "newest", "cursor": cursor}, headers=staff["admin"])
    assert response.status_code == 422, response.text
    assert fields(response) == ["cursor"]


@pytest.mark.parametrize("moment", [EARLY, LATE])
async def test_extreme_offsets_are_422_naming_the_field(
    client: Client, staff: Any, settings: Settings, moment: str
) -> None:
    lead = await new_lead(client)
    admin = staff["admin"]
    calls = [
        ("GET", "/api/bookings", {"params": {"from": moment}}, "from"),
        ("GET", "/api/bookings", {"params": {"to": moment}}, "to"),
        ("GET", "/api/availability/exceptions", {"params": {"from": moment}}, "from"),
        ("GET", "/api/availability/exceptions", {"params": {"to": moment}}, "to"),
        (
            "POST",
            "/api/availability/exceptions",
            {"json": {"starts_at": moment, "ends_at": "2030-01-01T00:00:00Z"}},
            "starts_at",
        ),
        ("GET", f"/api/leads/{lead}/slots", {"params": {"from": moment}}, "from"),
        ("POST", f"/api/leads/{lead}/bookings", {"json": {"starts_at": moment}}, "starts_at"),
    ]
    for method, path, kwargs, field in calls:
        response = await client.request(method, path, headers=admin, **kwargs)
        assert response.status_code == 422, (method, path, response.text)
        assert fields(response) == [field], (method, path, response.text)

    token = token_for(settings, lead)
    booked = await client.post("/api/booking", json={"token": token, "starts_at": moment})
    assert booked.status_code == 422, booked.text
    assert fields(booked) == ["starts_at"]
