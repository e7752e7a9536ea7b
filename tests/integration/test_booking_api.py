"""Booking the free consultation: patients through signed links, staff by phone; statuses, emails, conflicts."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

from litestar.testing import AsyncTestClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from intake import tokens
from intake.booking import links
from intake.db.base import utcnow
from intake.db.models import AuditEntry, Booking, Delivery, FollowUp, Lead, LeadEvent
from intake.settings import Settings
from tests.booking_fixtures import SOON_ANSWERS, new_lead, open_every_day, parse, slots, token_for

Client = AsyncTestClient[Any]


async def rows(db: AsyncEngine, model: Any, *where: Any) -> list[Any]:
    async with db.connect() as connection:
        return list((await connection.execute(select(model).where(*where))).all())


async def lead_status(db: AsyncEngine, lead_id: str) -> str:
    async with db.connect() as connection:
        return str((await connection.execute(select(Lead.status).where(Lead.id == uuid.UUID(lead_id)))).scalar_one())


def manage_token(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


async def book(client: Client, token: str, starts_at: str) -> Any:
    return await client.post("/api/booking", json={"token": token, "starts_at": starts_at})


async def move_to(db: AsyncEngine, booking_id: str, starts_at: dt.datetime) -> None:
    """Time travel for the cut-off and attended rules: put a booking at another time."""
    async with db.begin() as connection:
        await connection.execute(
            update(Booking)
            .where(Booking.id == uuid.UUID(booking_id))
            .values(starts_at=starts_at, ends_at=starts_at + dt.timedelta(minutes=30))
        )


# --- patients ---------------------------------------------------------------------------------


async def test_patient_books_a_free_slot_and_gets_a_confirmation(
    client: Client, staff: Any, settings: Settings, db: AsyncEngine
) -> None:
    await open_every_day(client, staff)
    lead = await new_lead(client)
    token = token_for(settings, lead)
    listing = await client.get("/api/booking/slots", params={"token": token})
    assert listing.status_code == 200, listing.text
    body = listing.json()
    assert body["location"] == "boca_raton" and body["address"] == settings.booking.addresses["boca_raton"]
    assert body["time_zone"] == "America/New_York"
    offered = body["slots"]
    assert offered and set(offered[0]) == {"starts_at", "ends_at", "location"}
    first = parse(offered[0]["starts_at"])
    assert first >= utcnow() + dt.timedelta(hours=2)
    assert parse(offered[-1]["starts_at"]) < utcnow() + dt.timedelta(days=14)
    assert offered[0]["starts_at"].endswith("Z")

    booked = await book(client, token, offered[0]["starts_at"])
    assert booked.status_code == 201, booked.text
    booking = booked.json()
    assert booking["status"] == "booked" and parse(booking["starts_at"]) == first
    assert booking["clinician"] == "Clinician" and booking["can_change"] is True
    assert booking["cancel_url"].startswith(f"{settings.clinic.booking_url}/cancel?token=")
    assert await lead_status(db, lead) == "consult_booked"
    events = await rows(db, LeadEvent, LeadEvent.lead_id == uuid.UUID(lead))
    assert [(e.actor_id, e.kind, e.from_value, e.to_value) for e in events] == [
        (None, "status_changed", "new", "consult_booked")
    ]
    confirmations = await rows(
        db, Delivery, Delivery.lead_id == uuid.UUID(lead), Delivery.kind == "booking_confirmation"
    )
    assert len(confirmations) == 1
    assert confirmations[0].ref_id == uuid.UUID(booking["id"])
    assert confirmations[0].dedupe_key == f"{lead}:{booking['id']}:booking_confirmation"
    # The reminder 24 hours before follows the booking (the follow-up schedule is told in the same transaction).
    reminders = await rows(db, FollowUp, FollowUp.lead_id == uuid.UUID(lead), FollowUp.kind == "consult_reminder")
    assert [r.ref_id for r in reminders] == [uuid.UUID(booking["id"])]

    again = await book(client, token, offered[1]["starts_at"])
    assert again.status_code == 409 and "reschedule" in again.json()["detail"]
    # One clinician: the booked time is no longer offered to anyone.
    other = await new_lead(client)
    assert offered[0]["starts_at"] not in {s["starts_at"] for s in await slots(client, token_for(settings, other))}
    detail = (await client.get(f"/api/leads/{lead}", headers=staff["front_desk"])).json()
    entries = [e for e in detail["timeline"] if e["kind"] == "booking"]
    assert [(e["id"], e["status"], e["location"]) for e in entries] == [(booking["id"], "booked", "boca_raton")]


async def test_soon_leads_are_offered_the_first_day_routine_leads_after_it(
    client: Client, staff: Any, settings: Settings
) -> None:
    await open_every_day(client, staff)
    soon = await slots(client, token_for(settings, await new_lead(client, SOON_ANSWERS)))
    routine = await slots(client, token_for(settings, await new_lead(client)))
    assert parse(routine[0]["starts_at"]) >= parse(soon[0]["starts_at"]) + dt.timedelta(hours=24)
    assert {s["starts_at"] for s in routine} < {s["starts_at"] for s in soon}
    held = soon[0]["starts_at"]
    refused = await book(client, token_for(settings, await new_lead(client)), held)
    assert refused.status_code == 409 and refused.json()["next_slots"]


async def test_bad_links_are_refused_with_401(client: Client, staff: Any, settings: Settings) -> None:
    await open_every_day(client, staff)
    lead = uuid.UUID(await new_lead(client))
    secret = tokens.jwt_secret(settings)
    expired = tokens.sign(secret, tokens.BOOK, lead, dt.timedelta(seconds=-1))
    wrong_purpose = tokens.sign(secret, tokens.UNSUBSCRIBE, lead, dt.timedelta(days=1))
    for token in ("garbage", expired, wrong_purpose, links.booking_token(settings, lead)[:-2] + "xx"):
        listing = await client.get("/api/booking/slots", params={"token": token})
        assert listing.status_code == 401, listing.text
        assert "not valid or has expired" in listing.json()["detail"]
        assert settings.clinic.phone in listing.json()["detail"]
        assert (await book(client, token, "2030-01-01T14:00:00Z")).status_code == 401
    for path in ("/api/booking/cancel", "/api/booking/reschedule"):
        response = await client.post(path, json={"token": "garbage", "starts_at": "2030-01-01T14:00:00Z"})
        assert response.status_code in (401, 422)
    assert (await client.post("/api/booking/cancel", json={"token": "garbage"})).status_code == 401
    assert (await client.get("/api/booking/manage", params={"token": "garbage"})).status_code == 401
    unknown = links.booking_token(settings, uuid.uuid4())
    assert (await client.get("/api/booking/slots", params={"token": unknown})).status_code == 404


async def test_a_taken_or_invented_time_is_refused(client: Client, staff: Any, settings: Settings) -> None:
    await open_every_day(client, staff)
    first, second = await new_lead(client), await new_lead(client)
    offered = await slots(client, token_for(settings, first))
    wanted = offered[3]["starts_at"]
    assert (await book(client, token_for(settings, first), wanted)).status_code == 201
    taken = await book(client, token_for(settings, second), wanted)
    assert taken.status_code == 409, taken.text
    suggestions = taken.json()["next_slots"]
    assert 1 <= len(suggestions) <= 5
    assert all(s["starts_at"] != wanted and parse(s["starts_at"]) > parse(wanted) for s in suggestions)
    assert suggestions[0]["starts_at"] == offered[4]["starts_at"]

    off_grid = (parse(offered[5]["starts_at"]) + dt.timedelta(minutes=7)).isoformat()
    invented = await book(client, token_for(settings, second), off_grid)
    assert invented.status_code == 422 and invented.json()["errors"][0]["field"] == "starts_at"
    naive = await book(client, token_for(settings, second), offered[5]["starts_at"].replace("Z", ""))
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "starts_at"
    # The same instant written with a local offset is the same slot.
    local = parse(offered[5]["starts_at"]).astimezone(dt.timezone(dt.timedelta(hours=-5))).isoformat()
    assert (await book(client, token_for(settings, second), local)).status_code == 201


async def test_in_home_only_inside_the_service_area(client: Client, staff: Any, settings: Settings) -> None:
    await open_every_day(client, staff, location="in_home")
    outside = await new_lead(client, location="in_home", zip="90210")
    refused = await client.get("/api/booking/slots", params={"token": token_for(settings, outside)})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "location"
    assert "service area" in refused.json()["errors"][0]["message"]
    inside = await new_lead(client, location="in_home", zip="33486")
    listing = (await client.get("/api/booking/slots", params={"token": token_for(settings, inside)})).json()
    assert listing["slots"] and listing["address"] is None and listing["location"] == "in_home"
    staff_try = await client.post(
        f"/api/leads/{outside}/bookings",
        json={"starts_at": listing["slots"][0]["starts_at"]},
        headers=staff["front_desk"],
    )
    assert staff_try.status_code == 422 and staff_try.json()["errors"][0]["field"] == "location"


async def test_patient_reschedules_and_cancels_with_the_emailed_links(
    client: Client, staff: Any, settings: Settings, db: AsyncEngine
) -> None:
    await open_every_day(client, staff)
    lead = await new_lead(client)
    offered = await slots(client, token_for(settings, lead))
    first = (await book(client, token_for(settings, lead), offered[0]["starts_at"])).json()
    token = manage_token(first["cancel_url"])

    shown = await client.get("/api/booking/manage", params={"token": token})
    assert shown.status_code == 200 and shown.json()["id"] == first["id"]
    # The reschedule page lists times with the manage token: every other free time, its own left out.
    choices = await slots(client, token)
    assert offered[0]["starts_at"] not in {c["starts_at"] for c in choices}
    assert offered[2]["starts_at"] in {c["starts_at"] for c in choices}

    moved = await client.post("/api/booking/reschedule", json={"token": token, "starts_at": offered[2]["starts_at"]})
    assert moved.status_code == 200, moved.text
    second = moved.json()
    assert second["id"] != first["id"] and second["starts_at"] == offered[2]["starts_at"]
    (old,) = await rows(db, Booking, Booking.id == uuid.UUID(first["id"]))
    (new,) = await rows(db, Booking, Booking.id == uuid.UUID(second["id"]))
    assert old.status == "cancelled" and old.cancelled_at is not None
    assert new.rescheduled_from_id == old.id and new.status == "booked" and new.booked_by_id is None
    confirmations = await rows(
        db, Delivery, Delivery.lead_id == uuid.UUID(lead), Delivery.kind == "booking_confirmation"
    )
    assert sorted(str(c.ref_id) for c in confirmations) == sorted([first["id"], second["id"]])
    # The first email's link now acts on the booking as it stands; asking for the same time again changes nothing.
    assert (await client.get("/api/booking/manage", params={"token": token})).json()["id"] == second["id"]
    same = await client.post("/api/booking/reschedule", json={"token": token, "starts_at": offered[2]["starts_at"]})
    assert same.status_code == 200 and same.json()["id"] == second["id"]
    assert len(await rows(db, Booking, Booking.lead_id == uuid.UUID(lead))) == 2
    # The old time is free again.
    assert offered[0]["starts_at"] in {
        s["starts_at"] for s in await slots(client, token_for(settings, await new_lead(client)))
    }

    cancelled = await client.post("/api/booking/cancel", json={"token": manage_token(second["cancel_url"])})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["can_change"] is False and cancelled.json()["cancel_url"] is None
    assert await lead_status(db, lead) == "contacted"
    twice = await client.post("/api/booking/cancel", json={"token": token})
    assert twice.status_code == 200 and twice.json()["status"] == "cancelled"
    late = await client.post("/api/booking/reschedule", json={"token": token, "starts_at": offered[4]["starts_at"]})
    assert late.status_code == 409 and late.json()["booking_url"].startswith(settings.clinic.booking_url)
    reminders = await rows(db, FollowUp, FollowUp.lead_id == uuid.UUID(lead), FollowUp.kind == "consult_reminder")
    assert [r.status for r in reminders] == ["cancelled"]
    # Booked again through the booking link: the lead can hold a new live booking.
    rebooked = await book(client, token_for(settings, lead), offered[5]["starts_at"])
    assert rebooked.status_code == 201 and await lead_status(db, lead) == "consult_booked"


async def test_changes_stop_at_the_cutoff_with_the_clinic_phone(
    client: Client, staff: Any, settings: Settings, db: AsyncEngine
) -> None:
    await open_every_day(client, staff)
    lead = await new_lead(client)
    offered = await slots(client, token_for(settings, lead))
    booking = (await book(client, token_for(settings, lead), offered[0]["starts_at"])).json()
    token = manage_token(booking["cancel_url"])
    await move_to(db, booking["id"], utcnow() + dt.timedelta(hours=5))
    for path, body in (
        ("/api/booking/cancel", {"token": token}),
        ("/api/booking/reschedule", {"token": token, "starts_at": offered[3]["starts_at"]}),
    ):
        refused = await client.post(path, json=body)
        assert refused.status_code == 409, refused.text
        assert settings.clinic.phone in refused.json()["detail"] and refused.json()["phone"] == settings.clinic.phone
    shown = (await client.get("/api/booking/manage", params={"token": token})).json()
    assert shown["status"] == "booked" and shown["can_change"] is False and shown["reschedule_url"] is None
    # A link that expired at the cut-off still gets the "call us" answer rather than "bad link".
    expired = tokens.sign(
        tokens.jwt_secret(settings), tokens.MANAGE_BOOKING, uuid.UUID(booking["id"]), dt.timedelta(seconds=-1)
    )
    refused = await client.post("/api/booking/cancel", json={"token": expired})
    assert refused.status_code == 409 and settings.clinic.phone in refused.json()["detail"]
    # ... but an expired link for a booking that could still change online is refused.
    await move_to(db, booking["id"], utcnow() + dt.timedelta(days=3))
    assert (await client.post("/api/booking/cancel", json={"token": expired})).status_code == 401
    assert (await client.post("/api/booking/cancel", json={"token": token})).status_code == 200


# --- staff ------------------------------------------------------------------------------------


async def test_staff_see_every_free_time_with_who_is_free(client: Client, staff: Any, settings: Settings) -> None:
    await open_every_day(client, staff)
    second = await client.post(
        "/api/staff",
        json={
            "email": "pt2@clinic.example.com",
            "name": "Second PT",
            "role": "clinician",
            "password": "a long enough password",
        },
        headers=staff["admin"],
    )
    await open_every_day(client, staff, clinician_id=second.json()["id"])
    lead = await new_lead(client)
    patient_view = await slots(client, token_for(settings, lead))
    response = await client.get(f"/api/leads/{lead}/slots", headers=staff["front_desk"])
    assert response.status_code == 200, response.text
    listing = response.json()
    assert listing["location"] == "boca_raton" and listing["address"] == settings.booking.addresses["boca_raton"]
    times = listing["slots"]
    # No soon hold and no notice period for staff: they see earlier times than the routine patient.
    assert parse(times[0]["starts_at"]) < parse(patient_view[0]["starts_at"])
    assert {c["name"] for c in times[0]["clinicians"]} == {"Clinician", "Second PT"}
    booked = await client.post(
        f"/api/leads/{lead}/bookings",
        json={"starts_at": times[0]["starts_at"], "clinician_id": second.json()["id"]},
        headers=staff["front_desk"],
    )
    assert booked.status_code == 201 and booked.json()["clinician"]["name"] == "Second PT"
    after = (await client.get(f"/api/leads/{lead}/slots", headers=staff["front_desk"])).json()["slots"]
    assert [c["name"] for c in after[0]["clinicians"]] == ["Clinician"]
    only = await client.get(
        f"/api/leads/{lead}/slots", params={"clinician_id": second.json()["id"]}, headers=staff["clinician"]
    )
    assert times[0]["starts_at"] not in {s["starts_at"] for s in only.json()["slots"]}
    assert (
        await client.get(f"/api/leads/{lead}/slots", params={"location": "virtual"}, headers=staff["front_desk"])
    ).json()["slots"] == []
    assert (await client.get(f"/api/leads/{uuid.uuid4()}/slots", headers=staff["front_desk"])).status_code == 404
    far = await client.get(
        f"/api/leads/{lead}/slots", params={"from": "2099-01-01T00:00:00Z"}, headers=staff["front_desk"]
    )
    assert far.status_code == 422 and far.json()["errors"][0]["field"] == "from"
    later = (utcnow() + dt.timedelta(days=20)).isoformat()
    shifted = (await client.get(f"/api/leads/{lead}/slots", params={"from": later}, headers=staff["front_desk"])).json()
    assert parse(shifted["slots"][0]["starts_at"]) >= parse(later)


async def test_staff_book_move_and_record_the_outcome(
    client: Client, staff: Any, settings: Settings, db: AsyncEngine
) -> None:
    await open_every_day(client, staff)
    lead = await new_lead(client)
    # Staff see every slot, the soon hold and the notice period do not apply to them.
    offered = await slots(client, token_for(settings, await new_lead(client, SOON_ANSWERS)))
    desk = staff["front_desk"]
    created = await client.post(
        f"/api/leads/{lead}/bookings", json={"starts_at": offered[0]["starts_at"]}, headers=desk
    )
    assert created.status_code == 201, created.text
    booking = created.json()
    assert booking["clinician"] == {"id": staff.ids["clinician"], "name": "Clinician"}
    assert booking["booked_by"] == {"id": staff.ids["front_desk"], "name": "Front Desk"}
    assert booking["lead_name"] == "Rosa Delgado" and booking["location"] == "boca_raton"
    assert await lead_status(db, lead) == "consult_booked"
    events = await rows(db, LeadEvent, LeadEvent.lead_id == uuid.UUID(lead))
    assert [(str(e.actor_id), e.to_value) for e in events] == [(staff.ids["front_desk"], "consult_booked")]

    second = await client.post(f"/api/leads/{lead}/bookings", json={"starts_at": offered[4]["starts_at"]}, headers=desk)
    assert second.status_code == 409
    unknown = await client.post(
        f"/api/leads/{uuid.uuid4()}/bookings", json={"starts_at": offered[4]["starts_at"]}, headers=desk
    )
    assert unknown.status_code == 404
    other = await new_lead(client)
    not_clinician = await client.post(
        f"/api/leads/{other}/bookings",
        json={"starts_at": offered[4]["starts_at"], "clinician_id": staff.ids["admin"]},
        headers=desk,
    )
    assert not_clinician.status_code == 422 and not_clinician.json()["errors"][0]["field"] == "clinician_id"
    bad_place = await client.post(
        f"/api/leads/{other}/bookings", json={"starts_at": offered[4]["starts_at"], "location": "moon"}, headers=desk
    )
    assert bad_place.status_code == 422 and bad_place.json()["errors"][0]["field"] == "location"
    no_hours = await client.post(
        f"/api/leads/{other}/bookings", json={"starts_at": offered[4]["starts_at"], "location": "virtual"}, headers=desk
    )
    assert no_hours.status_code == 422 and no_hours.json()["errors"][0]["field"] == "starts_at"
    taken = await client.post(f"/api/leads/{other}/bookings", json={"starts_at": offered[0]["starts_at"]}, headers=desk)
    assert taken.status_code == 409 and taken.json()["next_slots"]

    moved = await client.patch(
        f"/api/bookings/{booking['id']}", json={"starts_at": offered[6]["starts_at"]}, headers=staff["clinician"]
    )
    assert moved.status_code == 200, moved.text
    new = moved.json()
    assert new["rescheduled_from_id"] == booking["id"] and new["starts_at"] == offered[6]["starts_at"]
    confirmations = await rows(
        db, Delivery, Delivery.lead_id == uuid.UUID(lead), Delivery.kind == "booking_confirmation"
    )
    assert {str(c.ref_id) for c in confirmations} == {booking["id"], new["id"]}
    stale = await client.patch(f"/api/bookings/{booking['id']}", json={"status": "attended"}, headers=desk)
    assert stale.status_code == 409  # the old booking was replaced

    early = await client.patch(f"/api/bookings/{new['id']}", json={"status": "attended"}, headers=desk)
    assert early.status_code == 409 and "once it has started" in early.json()["detail"]
    both = await client.patch(
        f"/api/bookings/{new['id']}", json={"status": "cancelled", "starts_at": offered[8]["starts_at"]}, headers=desk
    )
    assert both.status_code == 422 and both.json()["errors"][0]["field"] == "status"
    assert (await client.patch(f"/api/bookings/{new['id']}", json={}, headers=desk)).status_code == 422
    assert (
        await client.patch(f"/api/bookings/{new['id']}", json={"status": "booked"}, headers=desk)
    ).status_code == 422
    assert (
        await client.patch(f"/api/bookings/{uuid.uuid4()}", json={"status": "cancelled"}, headers=desk)
    ).status_code == 404

    await move_to(db, new["id"], utcnow() - dt.timedelta(minutes=10))
    attended = await client.patch(f"/api/bookings/{new['id']}", json={"status": "attended"}, headers=staff["clinician"])
    assert attended.status_code == 200 and attended.json()["status"] == "attended"
    assert await lead_status(db, lead) == "consult_done"
    assert (
        await client.patch(f"/api/bookings/{new['id']}", json={"status": "attended"}, headers=desk)
    ).status_code == 200
    no_show = await client.patch(f"/api/bookings/{new['id']}", json={"status": "no_show"}, headers=desk)
    assert no_show.status_code == 409

    async with db.connect() as connection:
        actions = [
            (str(a), action)
            for a, action in (
                await connection.execute(
                    select(AuditEntry.actor_id, AuditEntry.action).where(AuditEntry.lead_id == uuid.UUID(lead))
                )
            ).all()
            if action.startswith("booking.")
        ]
    assert actions == [
        (staff.ids["front_desk"], "booking.create"),
        (staff.ids["clinician"], "booking.move"),
        (staff.ids["clinician"], "booking.attended"),
    ]


async def test_cancel_and_no_show_send_the_lead_back_to_contacted(
    client: Client, staff: Any, settings: Settings, db: AsyncEngine
) -> None:
    await open_every_day(client, staff)
    offered = await slots(client, token_for(settings, await new_lead(client, SOON_ANSWERS)))
    desk = staff["front_desk"]
    outcomes = {}
    for index, status in enumerate(("cancelled", "no_show")):
        lead = await new_lead(client)
        booking = (
            await client.post(
                f"/api/leads/{lead}/bookings", json={"starts_at": offered[index]["starts_at"]}, headers=desk
            )
        ).json()
        if status == "no_show":
            await move_to(db, booking["id"], utcnow() - dt.timedelta(minutes=40))
        changed = await client.patch(f"/api/bookings/{booking['id']}", json={"status": status}, headers=desk)
        assert changed.status_code == 200, changed.text
        outcomes[status] = (await lead_status(db, lead), changed.json()["status"])
    assert outcomes == {"cancelled": ("contacted", "cancelled"), "no_show": ("contacted", "no_show")}
    # A cancelled time is offered again.
    assert offered[0]["starts_at"] in {
        s["starts_at"] for s in await slots(client, token_for(settings, await new_lead(client, SOON_ANSWERS)))
    }


async def test_a_clinician_booked_at_one_location_is_not_offered_at_another(
    client: Client, staff: Any, settings: Settings
) -> None:
    admin = staff["admin"]
    await open_every_day(client, staff, location="boca_raton")
    await open_every_day(client, staff, location="pompano_beach")
    put = await client.put("/api/availability/settings/pompano_beach", json={"slot_minutes": 45}, headers=admin)
    assert put.status_code == 200
    boca_lead = await new_lead(client, SOON_ANSWERS)
    pompano_lead = await new_lead(client, SOON_ANSWERS, location="pompano_beach", zip="33062")
    boca = await slots(client, token_for(settings, boca_lead))
    pompano_before = await slots(client, token_for(settings, pompano_lead))
    # A Boca time that overlaps a 45-minute Pompano slot with a different start.
    pair = next(
        (b, p)
        for b in boca[4:]
        for p in pompano_before
        if p["starts_at"] != b["starts_at"]
        and parse(p["starts_at"]) < parse(b["ends_at"])
        and parse(b["starts_at"]) < parse(p["ends_at"])
    )
    assert (await book(client, token_for(settings, boca_lead), pair[0]["starts_at"])).status_code == 201
    pompano_after = await slots(client, token_for(settings, pompano_lead))
    start, end = parse(pair[0]["starts_at"]), parse(pair[0]["ends_at"])
    assert all(not (parse(p["starts_at"]) < end and start < parse(p["ends_at"])) for p in pompano_after)
    assert len(pompano_after) < len(pompano_before)
    refused = await book(client, token_for(settings, pompano_lead), pair[1]["starts_at"])
    assert refused.status_code == 409 and refused.json()["next_slots"]


async def test_the_schedule_lists_bookings_by_time_clinician_and_location(
    client: Client, staff: Any, settings: Settings, db: AsyncEngine
) -> None:
    await open_every_day(client, staff)
    offered = await slots(client, token_for(settings, await new_lead(client, SOON_ANSWERS)))
    desk = staff["front_desk"]
    ids = []
    for index in (0, 2, 4):
        lead = await new_lead(client)
        response = await client.post(
            f"/api/leads/{lead}/bookings", json={"starts_at": offered[index]["starts_at"]}, headers=desk
        )
        ids.append(response.json()["id"])
    await client.patch(f"/api/bookings/{ids[1]}", json={"status": "cancelled"}, headers=desk)
    window = {
        "from": offered[0]["starts_at"],
        "to": (parse(offered[-1]["starts_at"]) + dt.timedelta(days=1)).isoformat(),
    }
    listing = await client.get("/api/bookings", params=window, headers=staff["clinician"])
    assert listing.status_code == 200, listing.text
    assert [b["id"] for b in listing.json()["items"]] == [ids[0], ids[2]]  # cancelled ones only when asked for
    cancelled = await client.get("/api/bookings", params={**window, "status": "cancelled"}, headers=desk)
    assert [b["id"] for b in cancelled.json()["items"]] == [ids[1]]
    mine = await client.get("/api/bookings", params={**window, "clinician_id": staff.ids["clinician"]}, headers=desk)
    assert len(mine.json()["items"]) == 2
    elsewhere = await client.get("/api/bookings", params={**window, "location": "virtual"}, headers=desk)
    assert elsewhere.json()["items"] == []
    narrow = await client.get(
        "/api/bookings", params={"from": offered[0]["starts_at"], "to": offered[1]["starts_at"]}, headers=desk
    )
    assert [b["id"] for b in narrow.json()["items"]] == [ids[0]]
    backwards = await client.get("/api/bookings", params={"from": window["to"], "to": window["from"]}, headers=desk)
    assert backwards.status_code == 422 and backwards.json()["errors"][0]["field"] == "to"
    bad = await client.get("/api/bookings", params={"location": "moon"}, headers=desk)
    assert bad.status_code == 422
    assert (await client.get("/api/bookings")).status_code == 401
    audit = await rows(db, AuditEntry, AuditEntry.action == "booking.list")
    assert len(audit) >= 5 and all(a.lead_id is None for a in audit)
