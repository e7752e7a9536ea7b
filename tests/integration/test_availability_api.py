"""Admin availability: weekly hours per clinician and location, exceptions, and each location's timing."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.db.models import AuditEntry
from intake.settings import Settings
from tests.booking_fixtures import new_lead, parse, slots, token_for

Client = AsyncTestClient[Any]


def rule(staff_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "staff_id": staff_id,
        "location": "boca_raton",
        "weekday": 0,
        "start_time": "09:00",
        "end_time": "12:00",
    } | changes


async def test_admin_sets_weekly_hours_and_mistakes_are_named(client: Client, staff: Any, db: AsyncEngine) -> None:
    admin, clinician = staff["admin"], staff.ids["clinician"]
    created = await client.post("/api/availability/rules", json=rule(clinician), headers=admin)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["start_time"] == "09:00" and body["end_time"] == "12:00"
    assert body["staff"] == {"id": clinician, "name": "Clinician"}

    async def refused(status: int, field: str | None, **changes: Any) -> dict[str, Any]:
        response = await client.post("/api/availability/rules", json=rule(clinician) | changes, headers=admin)
        assert response.status_code == status, response.text
        if field is not None:
            assert [e["field"] for e in response.json()["errors"]] == [field]
        return dict(response.json())

    await refused(422, "end_time", start_time="12:00", end_time="09:00")
    await refused(422, "end_time", end_time="9am")
    await refused(422, "weekday", weekday=7)
    await refused(422, "location", location="miami")
    await refused(422, "staff_id", staff_id=staff.ids["front_desk"])  # not a clinician
    await refused(422, "staff_id", staff_id=str(uuid.uuid4()))
    overlap = await refused(409, None, start_time="11:00", end_time="13:00")
    assert overlap["overlapping_rule_id"] == body["id"]
    # The same hours at another location are fine: a booking at either blocks the other.
    assert (
        await client.post("/api/availability/rules", json=rule(clinician, location="virtual"), headers=admin)
    ).status_code == 201

    listed = await client.get("/api/availability/rules", params={"location": "boca_raton"}, headers=staff["front_desk"])
    assert listed.status_code == 200 and [r["id"] for r in listed.json()] == [body["id"]]
    assert len((await client.get("/api/availability/rules", params={"staff_id": clinician}, headers=admin)).json()) == 2

    forbidden = await client.post(
        "/api/availability/rules", json=rule(clinician, weekday=3), headers=staff["clinician"]
    )
    assert forbidden.status_code == 403
    assert (
        await client.delete(f"/api/availability/rules/{body['id']}", headers=staff["front_desk"])
    ).status_code == 403
    assert (await client.delete(f"/api/availability/rules/{body['id']}", headers=admin)).status_code == 204
    assert (await client.delete(f"/api/availability/rules/{body['id']}", headers=admin)).status_code == 404

    async with db.connect() as connection:
        actions = list((await connection.execute(select(AuditEntry.action, AuditEntry.target_staff_id))).all())
    assert ("availability.rule.create", uuid.UUID(clinician)) in actions
    assert ("availability.rule.delete", uuid.UUID(clinician)) in actions


async def test_exceptions_are_checked_listed_and_removed(client: Client, staff: Any) -> None:
    admin = staff["admin"]
    holiday = {"starts_at": "2026-12-25T05:00:00Z", "ends_at": "2026-12-26T05:00:00Z", "reason": "Christmas"}
    created = await client.post("/api/availability/exceptions", json=holiday, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["staff_id"] is None and created.json()["location"] is None
    time_off = {**holiday, "staff_id": staff.ids["clinician"], "location": "pompano_beach", "reason": None}
    assert (await client.post("/api/availability/exceptions", json=time_off, headers=admin)).status_code == 201

    backwards = await client.post(
        "/api/availability/exceptions", json={**holiday, "ends_at": "2026-12-24T05:00:00Z"}, headers=admin
    )
    assert backwards.status_code == 422 and backwards.json()["errors"][0]["field"] == "ends_at"
    naive = await client.post(
        "/api/availability/exceptions", json={**holiday, "starts_at": "2026-12-25T00:00:00"}, headers=admin
    )
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "starts_at"
    not_clinician = await client.post(
        "/api/availability/exceptions", json={**holiday, "staff_id": staff.ids["admin"]}, headers=admin
    )
    assert not_clinician.status_code == 422 and not_clinician.json()["errors"][0]["field"] == "staff_id"
    assert (
        await client.post("/api/availability/exceptions", json=holiday, headers=staff["front_desk"])
    ).status_code == 403

    listed = await client.get(
        "/api/availability/exceptions",
        params={"from": "2026-12-25T12:00:00Z", "to": "2026-12-31T00:00:00Z"},
        headers=staff["clinician"],
    )
    assert listed.status_code == 200 and len(listed.json()) == 2
    none_yet = await client.get("/api/availability/exceptions", params={"to": "2026-12-01T00:00:00Z"}, headers=admin)
    assert none_yet.json() == []
    exception_id = created.json()["id"]
    assert (await client.delete(f"/api/availability/exceptions/{exception_id}", headers=admin)).status_code == 204
    assert (await client.delete(f"/api/availability/exceptions/{exception_id}", headers=admin)).status_code == 404


async def test_location_timing_defaults_and_changes_the_slots(client: Client, staff: Any, settings: Settings) -> None:
    admin = staff["admin"]
    default = await client.get("/api/availability/settings/boca_raton", headers=staff["front_desk"])
    assert default.status_code == 200 and default.json() == {
        "location": "boca_raton",
        "slot_minutes": 30,
        "buffer_minutes": 0,
    }
    assert (await client.get("/api/availability/settings/miami", headers=admin)).status_code == 404
    for weekday in range(7):
        await client.post(
            "/api/availability/rules",
            json=rule(staff.ids["clinician"], weekday=weekday, start_time="08:00", end_time="20:00"),
            headers=admin,
        )
    lead = await new_lead(client)
    before = await slots(client, token_for(settings, lead))
    assert all(parse(s["ends_at"]) - parse(s["starts_at"]) == dt.timedelta(minutes=30) for s in before)
    changed = await client.put(
        "/api/availability/settings/boca_raton", json={"slot_minutes": 45, "buffer_minutes": 15}, headers=admin
    )
    assert changed.status_code == 200 and changed.json()["slot_minutes"] == 45
    assert (await client.get("/api/availability/settings/boca_raton", headers=admin)).json()["buffer_minutes"] == 15
    after = await slots(client, token_for(settings, lead))
    assert after and len(after) < len(before)
    assert all(parse(s["ends_at"]) - parse(s["starts_at"]) == dt.timedelta(minutes=45) for s in after)
    starts = sorted(parse(s["starts_at"]) for s in after)
    gaps = {later - earlier for earlier, later in itertools.pairwise(starts)}
    assert min(gaps).total_seconds() == 60 * 60  # 45 minutes and a 15-minute buffer
    bad = await client.put("/api/availability/settings/boca_raton", json={"slot_minutes": 5}, headers=admin)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "slot_minutes"
    assert (
        await client.put("/api/availability/settings/boca_raton", json={"slot_minutes": 30}, headers=staff["clinician"])
    ).status_code == 403
