"""No double booking under a real race on PostgreSQL: many patients at once for one clinician's time."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.db.models import Booking
from intake.settings import Settings
from tests.booking_fixtures import SOON_ANSWERS, new_lead, open_every_day, parse, slots, token_for
from tests.conftest import emptied_after, make_settings
from tests.in_loop import InFlight, served_in_this_loop
from tests.staff_fixtures import make_staff


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[AsyncEngine]:
    async for engine in emptied_after(pg_url):
        yield engine


@asynccontextmanager
async def racing(pg_url: str, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Settings, InFlight]]:
    """The app in this event loop (tests/in_loop.py): requests gathered here really run concurrently
    (Litestar's AsyncTestClient hands each request to a portal thread and waits for it)."""
    settings = make_settings(pg_url, tmp_path / "api")
    async with served_in_this_loop(settings) as (client, counter):
        yield client, settings, counter


async def booked_at(pg: AsyncEngine, starts_at: str) -> int:
    async with pg.connect() as connection:
        stmt = (
            select(func.count())
            .select_from(Booking)
            .where(Booking.status == "booked", Booking.starts_at == parse(starts_at))
        )
        return int((await connection.execute(stmt)).scalar_one())


async def test_twenty_patients_one_slot_one_clinician(pg_url: str, pg: AsyncEngine, tmp_path: Path) -> None:
    async with racing(pg_url, tmp_path) as (client, settings, counter):
        await _twenty_for_one(client, settings, counter, pg)


async def _twenty_for_one(client: httpx.AsyncClient, settings: Settings, counter: InFlight, pg: AsyncEngine) -> None:
    staff = await make_staff(settings, client)  # type: ignore[arg-type]
    await open_every_day(client, staff)
    leads = [await new_lead(client) for _ in range(20)]
    tokens = [token_for(settings, lead) for lead in leads]
    target = (await slots(client, tokens[0]))[0]["starts_at"]
    counter.most = 0

    responses = await asyncio.gather(
        *(client.post("/api/booking", json={"token": token, "starts_at": target}) for token in tokens)
    )

    assert counter.most > 1, "the requests did not overlap: this was no race"
    assert sorted(r.status_code for r in responses) == [201] + [409] * 19, [
        r.text for r in responses if r.status_code not in (201, 409)
    ]
    for response in responses:
        if response.status_code == 409:
            suggestions = response.json()["next_slots"]
            assert suggestions and all(s["starts_at"] != target for s in suggestions)
    assert await booked_at(pg, target) == 1
    async with pg.connect() as connection:
        assert (await connection.execute(select(func.count()).select_from(Booking))).scalar_one() == 1
    winner = next(r.json() for r in responses if r.status_code == 201)
    assert winner["starts_at"] == target


async def test_overlapping_times_of_different_lengths_at_two_locations(
    pg_url: str, pg: AsyncEngine, tmp_path: Path
) -> None:
    """Different starts, so the unique index cannot see the clash: the clinician's row lock must."""
    async with racing(pg_url, tmp_path) as (client, settings, counter):
        await _overlapping(client, settings, counter, pg)


async def _overlapping(client: httpx.AsyncClient, settings: Settings, counter: InFlight, pg: AsyncEngine) -> None:
    staff = await make_staff(settings, client)  # type: ignore[arg-type]
    await open_every_day(client, staff, location="boca_raton")
    await open_every_day(client, staff, location="pompano_beach")
    put = await client.put(
        "/api/availability/settings/pompano_beach", json={"slot_minutes": 45}, headers=staff["admin"]
    )
    assert put.status_code == 200
    boca = [await new_lead(client, SOON_ANSWERS) for _ in range(10)]
    pompano = [await new_lead(client, SOON_ANSWERS, location="pompano_beach", zip="33062") for _ in range(10)]
    boca_slots = await slots(client, token_for(settings, boca[0]))
    pompano_slots = await slots(client, token_for(settings, pompano[0]))
    boca_time, pompano_time = next(
        (b, p)
        for b in boca_slots
        for p in pompano_slots
        if p["starts_at"] != b["starts_at"]
        and parse(p["starts_at"]) < parse(b["ends_at"])
        and parse(b["starts_at"]) < parse(p["ends_at"])
    )
    # Interleaved, so that both times are among the first requests to get a database connection.
    requests = [
        pair
        for b, p in zip(boca, pompano, strict=True)
        for pair in ((b, boca_time["starts_at"]), (p, pompano_time["starts_at"]))
    ]
    counter.most = 0

    responses = await asyncio.gather(
        *(
            client.post("/api/booking", json={"token": token_for(settings, lead), "starts_at": at})
            for lead, at in requests
        )
    )

    assert counter.most > 1
    assert sorted(r.status_code for r in responses) == [201] + [409] * 19
    async with pg.connect() as connection:
        live = (await connection.execute(select(Booking).where(Booking.status == "booked"))).all()
    assert len(live) == 1
    assert {uuid.UUID(staff.ids["clinician"])} == {row.staff_id for row in live}
