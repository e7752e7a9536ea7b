"""Error replies stay small: at most 50 fields, each name and message cut short, and a count of the rest."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from tests.factories import ROUTINE_ANSWERS, submission

Client = AsyncTestClient[Any]


async def test_thousands_of_unknown_answers_get_a_short_reply_with_a_count(client: Client) -> None:
    answers = {**ROUTINE_ANSWERS, **{f"u{n}": n for n in range(4000)}}
    response = await client.post("/api/intake", json=submission(answers))
    assert response.status_code == 422
    body = response.json()
    assert len(body["errors"]) == 50
    assert body["errors_left_out"] >= 3950
    assert len(response.content) < 10_000


async def test_a_huge_unknown_field_name_is_not_echoed_whole(client: Client) -> None:
    response = await client.post("/api/auth/login", json={"email": "a@b.c", "password": "x", "k" * 20_000: 1})
    assert response.status_code == 422, response.text
    assert len(response.content) < 2_000
