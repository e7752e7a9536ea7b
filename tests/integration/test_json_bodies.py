"""JSON bodies: application/json only (415), nested at most 32 deep, no NUL in their text or in a query."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.booking_fixtures import new_lead
from tests.conftest import count_rows
from tests.factories import ROUTINE_ANSWERS, submission

Client = AsyncTestClient[Any]


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def fields(response: Any) -> list[str]:
    return [e["field"] for e in response.json()["errors"]]


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/api/intake", '{"language": "en", "answers": %s}'),
        ("/api/auth/login", '{"email": %s, "password": "x"}'),
        ("/api/booking", '{"token": "t", "starts_at": %s}'),
    ],
)
async def test_json_nested_a_thousand_deep_is_422_naming_the_body(client: Client, path: str, template: str) -> None:
    body = template % nested(1000)
    assert len(body) < 2100
    response = await client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert fields(response) == ["body"]
    assert "32 levels" in response.json()["errors"][0]["message"]


async def test_brackets_inside_strings_do_not_count_as_nesting(client: Client, db: AsyncEngine) -> None:
    payload = submission({**ROUTINE_ANSWERS, "goals": "[[[{{{" * 100})
    response = await client.post("/api/intake", json=payload)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded"])
async def test_a_json_body_sent_as_another_type_is_415_and_stores_nothing(
    client: Client, db: AsyncEngine, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    body = json.dumps(submission()).encode()
    response = await client.post("/api/intake", content=body, headers=headers)
    assert response.status_code == 415, response.text
    assert response.json()["status_code"] == 415
    assert fields(response) == ["Content-Type"]
    login = await client.post("/api/auth/login", content=b'{"email": "a@b.c", "password": "x"}', headers=headers)
    assert login.status_code == 415, login.text
    assert await count_rows(db, "leads") == 0


async def test_json_with_a_charset_parameter_is_accepted(client: Client) -> None:
    body = json.dumps(submission()).encode()
    response = await client.post(
        "/api/intake", content=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert response.status_code == 201, response.text


async def test_nul_in_a_body_is_422_naming_the_field(client: Client, db: AsyncEngine) -> None:
    payload = submission({**ROUTINE_ANSWERS, "goals": "walk\x00again"})
    response = await client.post("/api/intake", json=payload)
    assert response.status_code == 422, response.text
    assert fields(response) == ["answers.goals"]
    assert await count_rows(db, "leads") == 0


async def test_nul_in_a_note_is_422(client: Client, staff: Any) -> None:
    lead = await new_lead(client)
    response = await client.post(f"/api/leads/{lead}/notes", json={"body": "called\x00"}, headers=staff["front_desk"])
    assert response.status_code == 422, response.text
    assert fields(response) == ["body"]


async def test_an_escaped_backslash_before_u0000_is_text_not_nul(client: Client) -> None:
    payload = submission({**ROUTINE_ANSWERS, "goals": "C:\\u0000 is a path"})
    response = await client.post("/api/intake", json=payload)
    assert response.status_code == 201, response.text


async def test_nul_in_a_query_parameter_is_422_naming_it(client: Client, staff: Any) -> None:
    for params in ({"route": "\x00"}, {"location": "boca\x00"}, {"q": "ana\x00"}):
        response = await client.get("/api/leads", params=params, headers=staff["admin"])
        assert response.status_code == 422, (params, response.text)
        assert fields(response) == list(params), response.text
    audit = await client.get("/api/audit", params={"action": "lead.list\x00"}, headers=staff["admin"])
    assert audit.status_code == 422, audit.text
    assert fields(audit) == ["action"]


@pytest.mark.parametrize("body", [b"{", b'{"email": "\\ud800", "password": "x"}'])
async def test_a_body_that_is_not_json_is_400_naming_the_body(client: Client, body: bytes) -> None:
    response = await client.post("/api/auth/login", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert fields(response) == ["body"]
