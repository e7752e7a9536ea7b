"""Front-desk work on leads: list and queue, detail by role, pipeline, notes, export, and the audit trail."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.db.models import AuditEntry, Delivery, Lead, Screening
from tests.factories import EMERGENCY_ANSWERS, ROUTINE_ANSWERS, submission

Client = AsyncTestClient[Any]
SOON_ANSWERS = {**ROUTINE_ANSWERS, "recurring": True}
URGENT_ANSWERS = {**ROUTINE_ANSWERS, "fever": True}


async def _submit(client: Client, answers: dict[str, Any], **contact: Any) -> str:
    """A new person each time (the factory's shared phone would make them all one lead)."""
    contact.setdefault("phone", None)
    response = await client.post("/api/intake", json=submission(answers, **contact))
    assert response.status_code == 201, response.text
    return str(response.json()["lead_id"])


async def _audit(db: AsyncEngine) -> list[Any]:
    async with db.connect() as connection:
        return list((await connection.execute(select(AuditEntry).order_by(AuditEntry.at))).all())


async def test_list_sorts_by_urgency_and_pages_with_a_cursor(client: Client, staff: Any) -> None:
    routine = await _submit(client, ROUTINE_ANSWERS)
    soon = await _submit(client, SOON_ANSWERS)
    emergency = await _submit(client, EMERGENCY_ANSWERS)
    urgent = await _submit(client, URGENT_ANSWERS)
    first = (await client.get("/api/leads", params={"limit": 2}, headers=staff["front_desk"])).json()
    assert [row["id"] for row in first["items"]] == [emergency, urgent]
    second = (
        await client.get("/api/leads", params={"limit": 2, "cursor": first["next_cursor"]}, headers=staff["front_desk"])
    ).json()
    assert [row["id"] for row in second["items"]] == [soon, routine]
    assert second["next_cursor"] is None
    row = first["items"][0]
    assert set(row) == {
        "id",
        "name",
        "tier",
        "route",
        "score",
        "status",
        "location",
        "created_at",
        "assigned_to",
        "last_contact_at",
        "next_follow_up_at",
    }
    newest = (await client.get("/api/leads", params={"sort": "newest"}, headers=staff["front_desk"])).json()
    assert [r["id"] for r in newest["items"]] == [urgent, emergency, soon, routine]


async def test_filters_and_search(client: Client, staff: Any) -> None:
    await _submit(
        client,
        ROUTINE_ANSWERS,
        first_name="Beatriz",
        last_name="Olmos",
        email="bea.olmos@example.com",
        phone="561-555-0142",
    )
    other = await _submit(client, EMERGENCY_ANSWERS, location="virtual", phone=None)
    headers = staff["front_desk"]

    async def ids(**params: Any) -> list[str]:
        response = await client.get("/api/leads", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["items"]]

    assert await ids(tier="emergency") == [other]
    assert await ids(route="seek_care_now", location="virtual") == [other]
    assert await ids(status="new", tier="emergency") == [other]
    assert len(await ids(q="olmos")) == 1
    assert len(await ids(q="BEA.OLMOS@example")) == 1
    assert len(await ids(q="(561) 555-0142")) == 1
    assert await ids(q="nobody-matches") == []
    bad = await client.get("/api/leads", params={"q": "ab"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "q"
    bad = await client.get("/api/leads", params={"tier": "meh"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "tier"
    bad = await client.get("/api/leads", params={"cursor": "garbage"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"
    assert (await client.get("/api/leads", params={"limit": 101}, headers=headers)).status_code == 422


async def test_triage_queue_puts_seek_care_now_first_with_speed_to_lead(client: Client, staff: Any) -> None:
    soon = await _submit(client, SOON_ANSWERS)
    emergency = await _submit(client, EMERGENCY_ANSWERS)
    queue = (await client.get("/api/triage-queue", headers=staff["front_desk"])).json()["items"]
    assert [r["id"] for r in queue] == [emergency, soon]
    assert queue[0]["minutes_since_submission"] == 0
    assert queue[0]["call_by"] is None and queue[1]["call_by"] is not None  # soon: within one business day
    await client.patch(f"/api/leads/{emergency}", json={"status": "contacted"}, headers=staff["front_desk"])
    queue = (await client.get("/api/triage-queue", headers=staff["front_desk"])).json()["items"]
    assert [r["id"] for r in queue] == [soon]


async def test_front_desk_sees_no_answers_clinician_does(client: Client, staff: Any) -> None:
    lead = await _submit(client, EMERGENCY_ANSWERS)
    desk = (await client.get(f"/api/leads/{lead}", headers=staff["front_desk"])).json()
    pt = (await client.get(f"/api/leads/{lead}", headers=staff["clinician"])).json()
    assert "answers" not in desk["screenings"][0]
    assert desk["screenings"][0]["reasons"] and desk["contact"]["email"]
    assert pt["screenings"][0]["answers"]["bladder_bowel"] is True
    assert pt["consent"]["privacy_notice_version"]
    assert (await client.get(f"/api/leads/{uuid.uuid4()}", headers=staff["front_desk"])).status_code == 404


async def test_pipeline_moves_and_refuses_invalid_transitions(client: Client, staff: Any, db: AsyncEngine) -> None:
    lead = await _submit(client, ROUTINE_ANSWERS)
    headers = staff["front_desk"]
    moved = await client.patch(f"/api/leads/{lead}", json={"status": "contacted"}, headers=headers)
    assert moved.status_code == 200 and moved.json()["status"] == "contacted"
    assert moved.json()["last_contact_at"] is not None
    skip = await client.patch(f"/api/leads/{lead}", json={"status": "converted"}, headers=headers)
    assert skip.status_code == 409
    assert skip.json()["allowed"] == ["consult_booked", "referred_out", "closed"]
    assert "consult_booked" in skip.json()["detail"]
    no_reason = await client.patch(f"/api/leads/{lead}", json={"status": "closed"}, headers=headers)
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "closed_reason"
    read_only = await client.patch(f"/api/leads/{lead}", json={"tier": "routine"}, headers=headers)
    assert read_only.status_code == 422 and read_only.json()["errors"][0]["field"] == "tier"
    unknown = await client.patch(f"/api/leads/{lead}", json={"status": "teleported"}, headers=headers)
    assert unknown.status_code == 422
    assigned = await client.patch(f"/api/leads/{lead}", json={"assigned_to": staff.ids["clinician"]}, headers=headers)
    assert assigned.json()["assigned_to"]["name"] == "Clinician"
    nobody = await client.patch(f"/api/leads/{lead}", json={"assigned_to": str(uuid.uuid4())}, headers=headers)
    assert nobody.status_code == 422
    closed = await client.patch(
        f"/api/leads/{lead}", json={"status": "closed", "closed_reason": "not_interested"}, headers=headers
    )
    assert closed.status_code == 200
    reopen = await client.patch(f"/api/leads/{lead}", json={"status": "contacted"}, headers=headers)
    assert reopen.status_code == 409 and reopen.json()["allowed"] == []
    timeline = closed.json()["timeline"]
    assert [e["to"] for e in timeline if e["kind"] == "status_changed"] == ["closed", "contacted"]
    listed = (await client.get("/api/leads", params={"assigned_to": staff.ids["clinician"]}, headers=headers)).json()
    assert [r["id"] for r in listed["items"]] == [lead]


async def test_do_not_contact_cancels_every_unsent_email(client: Client, staff: Any, db: AsyncEngine) -> None:
    lead = await _submit(client, ROUTINE_ANSWERS)
    async with db.begin() as connection:
        screening_id = (await connection.execute(select(Screening.id))).scalar_one()
        await connection.execute(
            Delivery.__table__.insert().values(
                id=uuid.uuid4(),
                lead_id=uuid.UUID(lead),
                screening_id=screening_id,
                kind="booking_invitation",
                channel="email",
                dedupe_key="x",
                queue="intake",
                status="queued",
                attempts=0,
            )
        )
    response = await client.patch(
        f"/api/leads/{lead}",
        json={"status": "closed", "closed_reason": "do_not_contact"},
        headers=staff["front_desk"],
    )
    assert response.status_code == 200
    async with db.connect() as connection:
        assert (await connection.execute(select(Delivery.status))).scalar_one() == "cancelled"


async def test_notes_and_export(client: Client, staff: Any) -> None:
    lead = await _submit(client, ROUTINE_ANSWERS, first_name='=HYPERLINK("x")', last_name="Ortiz")
    note = await client.post(
        f"/api/leads/{lead}/notes",
        json={"body": "Left a voicemail", "contact_made": True},
        headers=staff["front_desk"],
    )
    assert note.status_code == 201 and note.json()["author"]["name"] == "Front Desk"
    empty = await client.post(f"/api/leads/{lead}/notes", json={"body": ""}, headers=staff["front_desk"])
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "body"
    detail = (await client.get(f"/api/leads/{lead}", headers=staff["front_desk"])).json()
    assert detail["timeline"][0]["kind"] == "note" and detail["last_contact_at"] is not None

    assert (await client.get("/api/leads/export.csv", headers=staff["front_desk"])).status_code == 403
    export = await client.get("/api/leads/export.csv", params={"tier": "routine"}, headers=staff["clinician"])
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [r["id"] for r in rows] == [lead]
    assert rows[0]["first_name"].startswith("'=")  # no formula runs when a spreadsheet opens it


async def test_every_read_and_change_is_audited_without_values(client: Client, staff: Any, db: AsyncEngine) -> None:
    lead = await _submit(client, EMERGENCY_ANSWERS, first_name="Auditia")
    await client.get(f"/api/leads/{lead}", headers=staff["clinician"])
    await client.patch(f"/api/leads/{lead}", json={"status": "contacted"}, headers=staff["front_desk"])
    await client.get("/api/leads/export.csv", headers=staff["clinician"])
    entries = await _audit(db)
    actions = [(e.action, str(e.lead_id) if e.lead_id else None) for e in entries]
    assert ("lead.read", lead) in actions and ("lead.update", lead) in actions and ("lead.export", None) in actions
    update_entry = next(e for e in entries if e.action == "lead.update")
    assert update_entry.fields == ["status"] and str(update_entry.actor_id) == staff.ids["front_desk"]
    assert all("Auditia" not in str(e.fields) and "contacted" not in str(e.fields) for e in entries)

    trail = await client.get("/api/audit", params={"lead_id": lead}, headers=staff["admin"])
    assert trail.status_code == 200
    assert {e["action"] for e in trail.json()["items"]} == {"lead.read", "lead.update"}
    assert (await client.get("/api/audit", headers=staff["clinician"])).status_code == 403

    with pytest.raises(DBAPIError, match="append-only"):
        async with db.begin() as connection:
            await connection.execute(update(AuditEntry).values(action="tampered"))
    with pytest.raises(DBAPIError, match="append-only"):
        async with db.begin() as connection:
            await connection.execute(AuditEntry.__table__.delete())


async def test_a_failed_change_writes_no_audit_row(client: Client, staff: Any, db: AsyncEngine) -> None:
    lead = await _submit(client, ROUTINE_ANSWERS)
    before = len(await _audit(db))
    response = await client.patch(f"/api/leads/{lead}", json={"status": "converted"}, headers=staff["front_desk"])
    assert response.status_code == 409
    assert len(await _audit(db)) == before
    async with db.connect() as connection:
        assert (await connection.execute(select(Lead.status))).scalar_one() == "new"


async def test_rescoring_is_explicit_and_keeps_both_results(client: Client, staff: Any, db: AsyncEngine) -> None:
    submitted = (await client.post("/api/intake", json=submission(SOON_ANSWERS, phone=None))).json()
    lead, screening = submitted["lead_id"], submitted["screening_id"]
    path = f"/api/leads/{lead}/screenings/{screening}/rescore"
    assert (await client.post(path, json={}, headers=staff["front_desk"])).status_code == 403
    response = await client.post(path, json={}, headers=staff["clinician"])
    assert response.status_code == 201, response.text
    again = response.json()
    assert again["rescored_from_id"] == screening and again["tier"] == "soon"
    assert again["previous"]["rule_set_version"] == submitted["rule_set"]
    unknown = await client.post(path, json={"rule_set_version": "1999-01.1"}, headers=staff["clinician"])
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "rule_set_version"
    detail = (await client.get(f"/api/leads/{lead}", headers=staff["clinician"])).json()
    assert [s["id"] for s in detail["screenings"]] == [again["id"], screening]  # both kept, newest first
    assert detail["screenings"][1]["rescored_from_id"] is None
    entries = await _audit(db)
    assert any(e.action == "screening.rescore" and str(e.lead_id) == lead for e in entries)
