"""Headers of replies: no cache keeps personal data, and the CSV export names its charset once."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

Client = AsyncTestClient[Any]


async def test_the_csv_export_names_its_charset_once(client: Client, staff: Any) -> None:
    response = await client.get("/api/leads/export.csv", headers=staff["admin"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"


async def test_replies_with_personal_data_are_not_cached(client: Client, staff: Any) -> None:
    login = await client.post(
        "/api/auth/login", json={"email": "admin@clinic.example.com", "password": "correct horse battery staple"}
    )
    assert login.status_code == 200
    assert login.headers["cache-control"] == "no-store"
    for path in ("/api/leads", "/api/triage-queue", "/api/audit", "/api/staff", "/api/leads/export.csv"):
        response = await client.get(path, headers=staff["admin"])
        assert response.status_code == 200, (path, response.text)
        assert response.headers["cache-control"] == "no-store", path
    questionnaire = await client.get("/api/intake/questionnaire")
    assert questionnaire.headers["cache-control"] == "max-age=300, public"
