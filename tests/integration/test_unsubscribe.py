"""The unsubscribe link: opening it (a person, or a mail scanner) only asks; a POST unsubscribes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from intake import tokens
from intake.db.models import Lead
from intake.settings import Settings
from tests.factories import submission

Client = AsyncTestClient[Any]


async def _lead_and_link(client: Client, settings: Settings, language: str = "en") -> tuple[uuid.UUID, str]:
    response = await client.post("/api/intake", json=submission(language=language, phone=None))
    assert response.status_code == 201, response.text
    lead_id = uuid.UUID(response.json()["lead_id"])
    token = tokens.sign(tokens.jwt_secret(settings), tokens.UNSUBSCRIBE, lead_id, dt.timedelta(days=1))
    return lead_id, f"/u/{token}"


async def _unsubscribed_at(db: AsyncEngine, lead_id: uuid.UUID) -> dt.datetime | None:
    async with db.connect() as connection:
        return (await connection.execute(select(Lead.unsubscribed_at).where(Lead.id == lead_id))).scalar_one()


async def test_opening_the_link_asks_with_one_button_and_changes_nothing(
    client: Client, settings: Settings, db: AsyncEngine
) -> None:
    lead_id, path = await _lead_and_link(client, settings, language="es")
    for _ in range(3):  # a scanner, a preview, the person
        page = await client.get(path)
        assert page.status_code == 200
        assert page.headers["Referrer-Policy"] == "no-referrer"
    assert await _unsubscribed_at(db, lead_id) is None
    assert f'<form method="post" action="{path}">' in page.text
    assert "Darme de baja" in page.text and 'lang="es"' in page.text  # in the person's language

    pressed = await client.post(path, headers={"Accept": "text/html,application/xhtml+xml"})
    assert pressed.status_code == 200 and "Se ha dado de baja" in pressed.text
    assert await _unsubscribed_at(db, lead_id) is not None
    assert "Se ha dado de baja" in (await client.get(path)).text  # the link now says so, with no button
    assert "<form" not in (await client.get(path)).text


async def test_rfc_8058_one_click_post_still_unsubscribes(client: Client, settings: Settings, db: AsyncEngine) -> None:
    lead_id, path = await _lead_and_link(client, settings)
    one_click = await client.post(
        path, content=b"List-Unsubscribe=One-Click", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert one_click.status_code == 200 and one_click.json() == {"status": "unsubscribed"}
    assert await _unsubscribed_at(db, lead_id) is not None
    assert (await client.post(path, content=b"List-Unsubscribe=One-Click")).status_code == 200  # twice is fine


async def test_a_bad_link_is_404_as_a_page_and_to_a_mail_client(client: Client) -> None:
    assert (await client.get("/u/not-a-token")).status_code == 404
    assert (await client.post("/u/not-a-token", headers={"Accept": "text/html"})).status_code == 404
    assert (await client.post("/u/not-a-token", content=b"List-Unsubscribe=One-Click")).status_code == 404
