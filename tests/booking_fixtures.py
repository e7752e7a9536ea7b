"""Set-up the booking tests share: opening hours through the admin API, new leads, and their links."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from intake.booking import links
from intake.settings import Settings
from tests.factories import ROUTINE_ANSWERS, submission

SOON_ANSWERS = {**ROUTINE_ANSWERS, "recurring": True}


async def open_every_day(
    client: Any,
    staff: Any,
    *,
    clinician_id: str | None = None,
    location: str = "boca_raton",
    hours: tuple[str, str] = ("08:00", "20:00"),
) -> None:
    """Hours on all seven weekdays, so no test depends on what day it is run."""
    for weekday in range(7):
        response = await client.post(
            "/api/availability/rules",
            json={
                "staff_id": clinician_id or staff.ids["clinician"],
                "location": location,
                "weekday": weekday,
                "start_time": hours[0],
                "end_time": hours[1],
            },
            headers=staff["admin"],
        )
        assert response.status_code == 201, response.text


async def new_lead(client: Any, answers: dict[str, Any] | None = None, **contact: Any) -> str:
    """A new person each time (the factory's shared phone would make them all one lead)."""
    contact.setdefault("phone", None)
    response = await client.post("/api/intake", json=submission(answers or ROUTINE_ANSWERS, **contact))
    assert response.status_code == 201, response.text
    return str(response.json()["lead_id"])


def token_for(settings: Settings, lead_id: str) -> str:
    return links.booking_token(settings, uuid.UUID(lead_id))


def parse(moment: str) -> dt.datetime:
    return dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))


async def slots(client: Any, token: str) -> list[dict[str, Any]]:
    response = await client.get("/api/booking/slots", params={"token": token})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["slots"]
    return found
