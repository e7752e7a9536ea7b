"""The public intake on PostgreSQL and SQLite: the answer a patient gets, and what is stored."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.db.models import Consent, Lead, Screening
from tests.conftest import count_rows
from tests.factories import EMERGENCY_ANSWERS, ROUTINE_ANSWERS, submission

Client = AsyncTestClient[Any]


async def _rows(db: AsyncEngine, model: Any) -> list[Any]:
    async with db.connect() as connection:
        return list((await connection.execute(select(model))).all())


async def test_questionnaire_in_both_languages(client: Client) -> None:
    en = (await client.get("/api/intake/questionnaire", params={"lang": "en"})).json()
    es = (await client.get("/api/intake/questionnaire", params={"lang": "es"})).json()
    assert en["resourceType"] == "Questionnaire"
    assert en["version"] == es["version"]
    assert en["language"] == "en" and es["language"] == "es"
    assert en["item"][0]["text"] != es["item"][0]["text"]
    bad = await client.get("/api/intake/questionnaire", params={"lang": "fr"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "lang"


async def test_emergency_answer_comes_in_the_response_and_is_stored(client: Client, db: AsyncEngine) -> None:
    response = await client.post("/api/intake", json=submission(EMERGENCY_ANSWERS))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["tier"] == "emergency"
    assert body["route"] == "seek_care_now"
    assert "bladder_bowel" in [r["code"] for r in body["reasons"]]
    assert all(r["text"] for r in body["reasons"])
    assert any(a["href"] == "tel:911" for a in body["advice"]["actions"])
    assert "911" in body["advice"]["title"] + body["advice"]["body"]
    assert "diagnos" in body["disclaimer"].lower()
    assert 75 <= body["score"] <= 100

    (lead,) = await _rows(db, Lead)
    (screening,) = await _rows(db, Screening)
    (consent,) = await _rows(db, Consent)
    assert str(lead.id) == body["lead_id"] and lead.tier == "emergency" and lead.status == "new"
    assert lead.phone == "+15615550123"
    assert str(screening.id) == body["screening_id"]
    assert screening.answers["bladder_bowel"] is True
    assert screening.rule_set_version == body["rule_set"]
    assert [r["code"] for r in screening.reasons] == [r["code"] for r in body["reasons"]]
    assert consent.privacy_notice_version and consent.privacy_accepted_at is not None
    assert consent.email_followup is True and consent.sms is False


async def test_routine_answer_invites_to_book(client: Client, settings: Any) -> None:
    body = (await client.post("/api/intake", json=submission(ROUTINE_ANSWERS))).json()
    assert body["tier"] == "routine" and body["route"] == "book_consultation"
    assert any(a["href"].startswith(f"{settings.clinic.booking_url}?token=") for a in body["advice"]["actions"])


async def test_spanish_submission_is_answered_in_spanish(client: Client) -> None:
    en = (await client.post("/api/intake", json=submission(EMERGENCY_ANSWERS))).json()
    es = (await client.post("/api/intake", json=submission(EMERGENCY_ANSWERS, language="es"))).json()
    assert es["advice"]["title"] != en["advice"]["title"]
    assert es["disclaimer"] != en["disclaimer"]
    assert [r["code"] for r in es["reasons"]] == [r["code"] for r in en["reasons"]]
    assert es["reasons"][0]["text"] != en["reasons"][0]["text"]


async def test_returning_person_keeps_one_lead_with_history(client: Client, db: AsyncEngine) -> None:
    first = (await client.post("/api/intake", json=submission(email="Rosa.D@Example.com", phone=None))).json()
    again = (await client.post("/api/intake", json=submission(EMERGENCY_ANSWERS, email="rosa.d@example.com"))).json()
    by_phone = (await client.post("/api/intake", json=submission(email="other@example.com"))).json()
    assert first["lead_id"] == again["lead_id"] == by_phone["lead_id"]
    assert len({first["screening_id"], again["screening_id"], by_phone["screening_id"]}) == 3
    assert await count_rows(db, "leads") == 1
    assert await count_rows(db, "screenings") == 3
    (lead,) = await _rows(db, Lead)
    assert lead.tier == "routine"  # the latest screening's triage


async def test_a_returning_person_gets_the_newest_details_and_keeps_a_phone_or_zip_left_out(
    client: Client, db: AsyncEngine
) -> None:
    first = await client.post("/api/intake", json=submission(email="keep@example.com", phone="(561) 555-0199"))
    (before,) = await _rows(db, Lead)
    async with db.begin() as connection:  # staff worked on the lead meanwhile
        await connection.execute(text("UPDATE leads SET status = 'contacted'"))
    again = await client.post(
        "/api/intake",
        json=submission(
            EMERGENCY_ANSWERS, email="keep@example.com", phone=None, zip=None, first_name="Rosie", location="virtual"
        ),
    )
    assert first.json()["lead_id"] == again.json()["lead_id"]
    (lead,) = await _rows(db, Lead)
    assert (lead.first_name, lead.location, lead.tier) == ("Rosie", "virtual", "emergency")
    assert (lead.phone, lead.zip) == ("+15615550199", "33431")  # left out: kept
    assert lead.search_text == "rosie delgado keep@example.com 15615550199"  # still found by phone
    assert lead.status == "contacted" and lead.created_at == before.created_at
    assert lead.updated_at > before.updated_at


async def test_idempotency_key_replays_the_first_answer(client: Client, db: AsyncEngine) -> None:
    payload = submission(EMERGENCY_ANSWERS)
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    first = await client.post("/api/intake", json=payload, headers=headers)
    retry = await client.post("/api/intake", json=payload, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert await count_rows(db, "screenings") == 1
    other = await client.post("/api/intake", json=submission(), headers=headers)
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert await count_rows(db, "screenings") == 1


async def test_concurrent_retries_with_one_key_store_once(client: Client, db: AsyncEngine) -> None:
    payload = submission(ROUTINE_ANSWERS)
    headers = {"Idempotency-Key": "double-click-1"}
    responses = await asyncio.gather(*(client.post("/api/intake", json=payload, headers=headers) for _ in range(5)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["screening_id"] for r in responses}) == 1
    assert await count_rows(db, "screenings") == 1


async def test_concurrent_first_submissions_of_one_person_make_one_lead(client: Client, db: AsyncEngine) -> None:
    payloads = [submission(email="same.person@example.com") for _ in range(6)]
    responses = await asyncio.gather(*(client.post("/api/intake", json=p) for p in payloads))
    assert {r.status_code for r in responses} == {201}, [r.text for r in responses]
    assert len({r.json()["lead_id"] for r in responses}) == 1
    assert await count_rows(db, "leads") == 1
    assert await count_rows(db, "screenings") == 6


async def test_a_connection_killed_by_the_server_costs_the_patient_nothing(
    client: Client, db: AsyncEngine, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL: the server ends the pooled connections")
    assert (await client.post("/api/intake", json=submission())).status_code == 201
    async with db.connect() as connection:  # what a server restart or a failover does to the pool
        await connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    # The pooled connection is dead: the first attempt fails on it, the retry gets a new one.
    response = await client.post("/api/intake", json=submission(email="after.restart@example.com"))
    assert response.status_code == 201, response.text
    assert await count_rows(db, "screenings") == 2


def _with_answers(**changes: Any) -> dict[str, Any]:
    answers = {**ROUTINE_ANSWERS, **changes}
    return submission({k: v for k, v in answers.items() if v is not ...})


BAD_SUBMISSIONS = {
    "unknown linkId": (_with_answers(favourite_colour="blue"), "answers.favourite_colour"),
    "code outside options": (_with_answers(duration="forever"), "answers.duration"),
    "wrong type": (_with_answers(pain_now="seven"), "answers.pain_now"),
    "bool is not an integer": (_with_answers(pain_now=True), "answers.pain_now"),
    "out of range": (_with_answers(pain_now=11), "answers.pain_now"),
    "missing required": (_with_answers(duration=...), "answers.duration"),
    "under 16": (_with_answers(age=15), "answers.age"),
    "hidden item answered": (_with_answers(labor_signs=True), "answers.labor_signs"),
    "multi not a list": (_with_answers(pain_area="lower_back"), "answers.pain_area"),
    "bad email": (submission(email="not-an-email"), "contact.email"),
    "bad phone": (submission(phone="12"), "contact.phone"),
    "unknown contact field": (submission(nickname="Ro"), "contact.nickname"),
    "bad location": (submission(location="miami"), "contact.location"),
    "bad language": ({**submission(), "language": "fr"}, "language"),
    "answers not an object": ({**submission(), "answers": [1, 2]}, "answers"),
    "privacy not given": (
        {**submission(), "consent": {"privacy": False, "email_followup": True}},
        "consent.privacy",
    ),
    "missing consent": ({k: v for k, v in submission().items() if k != "consent"}, "consent"),
}


@pytest.mark.parametrize("case", list(BAD_SUBMISSIONS))
async def test_bad_input_is_422_naming_the_field_and_stores_nothing(case: str, client: Client, db: AsyncEngine) -> None:
    payload, field = BAD_SUBMISSIONS[case]
    response = await client.post("/api/intake", json=payload)
    assert response.status_code == 422, response.text
    fields = [e["field"] for e in response.json()["errors"]]
    assert field in fields, fields
    for table in ("leads", "screenings", "consents", "idempotency_records"):
        assert await count_rows(db, table) == 0


async def test_under_16_message_says_who_the_screen_is_for(client: Client) -> None:
    response = await client.post("/api/intake", json=_with_answers(age=15))
    (error,) = [e for e in response.json()["errors"] if e["field"] == "answers.age"]
    assert "16" in error["message"]


async def test_every_problem_is_reported_at_once(client: Client) -> None:
    payload = submission({**ROUTINE_ANSWERS, "pain_now": 42, "duration": "forever"}, email="nope", phone="1")
    payload["consent"]["privacy"] = False
    fields = {e["field"] for e in (await client.post("/api/intake", json=payload)).json()["errors"]}
    assert {
        "answers.pain_now",
        "answers.duration",
        "contact.email",
        "contact.phone",
        "consent.privacy",
    } <= fields


async def test_oversized_body_is_413_and_stores_nothing(client: Client, db: AsyncEngine) -> None:
    payload = submission({**ROUTINE_ANSWERS, "goals": "x" * 70_000})
    response = await client.post("/api/intake", json=payload)
    assert response.status_code == 413
    assert await count_rows(db, "leads") == 0


async def test_malformed_json_is_a_client_error(client: Client, db: AsyncEngine) -> None:
    response = await client.post(
        "/api/intake", content=b'{"language": "en", ', headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert await count_rows(db, "leads") == 0


async def test_health_ready_and_request_id(client: Client) -> None:
    health = await client.get("/health")
    assert health.status_code == 200 and health.headers["X-Request-ID"]
    ready = await client.get("/ready", headers={"X-Request-ID": "abc-123"})
    assert ready.status_code == 200 and ready.json()["database"] == "ok"
    assert ready.headers["X-Request-ID"] == "abc-123"


async def test_every_route_has_an_operation_id(client: Client) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    operations = [op for path in schema["paths"].values() for op in path.values() if isinstance(op, dict)]
    assert operations
    assert all(op.get("operationId") for op in operations)
    assert "/api/intake" in schema["paths"]


async def test_an_expired_idempotency_key_starts_a_new_request(
    database_url: str, tmp_path: Any, db: AsyncEngine
) -> None:
    from tests.conftest import make_settings

    settings = make_settings(database_url, tmp_path / "data", intake={"idempotency_ttl_hours": 0})
    from intake.app import create_app

    async with AsyncTestClient(app=create_app(settings)) as client:
        headers = {"Idempotency-Key": "old-key"}
        first = await client.post("/api/intake", json=submission(), headers=headers)
        again = await client.post("/api/intake", json=submission(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["screening_id"] != again.json()["screening_id"]
    assert "Idempotent-Replayed" not in again.headers
