"""Every staff route in the OpenAPI schema, called as anonymous, front_desk, clinician and admin."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any

from litestar.testing import AsyncTestClient

from tests.factories import ROUTINE_ANSWERS, submission

PUBLIC = {
    "health",
    "ready",
    "pipeline",
    "getQuestionnaire",
    "submitScreen",
    "login",
    "unsubscribePage",
    "unsubscribeOneClick",
    "getBookingSlots",
    "bookConsultation",
    "getMyBooking",
    "cancelMyBooking",
    "rescheduleMyBooking",
}
_counter = itertools.count()

# operationId -> (expected status for front_desk, clinician, admin; a body maker or None)
EXPECTED: dict[str, tuple[tuple[int, int, int], Callable[[dict[str, str]], Any] | None]] = {
    "me": ((200, 200, 200), None),
    "logout": ((204, 204, 204), None),
    # A wrong current password: 422 past the guard, and nothing changes (the other tests' tokens stay good).
    "changeOwnPassword": (
        (422, 422, 422),
        lambda ids: {"current_password": "not the current one", "new_password": "violet lantern across the bay"},
    ),
    "listLeads": ((200, 200, 200), None),
    "triageQueue": ((200, 200, 200), None),
    "getLead": ((200, 200, 200), None),
    "updateLead": ((200, 200, 200), lambda ids: {"assigned_to": None}),
    "addLeadNote": ((201, 201, 201), lambda ids: {"body": "called"}),
    "exportLeads": ((403, 200, 200), None),
    "rescoreScreening": ((403, 201, 201), lambda ids: {}),
    "listStaff": ((403, 403, 200), None),
    "createStaff": (
        (403, 403, 201),
        lambda ids: {
            "email": f"new{next(_counter)}@clinic.example.com",
            "name": "N",
            "role": "front_desk",
            "password": "a long enough password",
        },
    ),
    "updateStaff": ((403, 403, 200), lambda ids: {"name": "Renamed"}),
    "listAudit": ((403, 403, 200), None),
    # Booking: ids in paths are unknown ones ({rule_id} ...), so an allowed role gets 404; no hours are set, so
    # booking a lead is refused with 422: what matters here is who gets past the guard.
    "listAvailabilityRules": ((200, 200, 200), None),
    "createAvailabilityRule": (
        (403, 403, 201),
        lambda ids: {
            "staff_id": ids["clinician"],
            "location": "virtual",
            "weekday": 6,
            "start_time": "06:00",
            "end_time": "07:00",
        },
    ),
    "deleteAvailabilityRule": ((403, 403, 404), None),
    "listAvailabilityExceptions": ((200, 200, 200), None),
    "createAvailabilityException": (
        (403, 403, 201),
        lambda ids: {"starts_at": "2030-01-01T05:00:00Z", "ends_at": "2030-01-02T05:00:00Z"},
    ),
    "deleteAvailabilityException": ((403, 403, 404), None),
    "getLocationSettings": ((200, 200, 200), None),
    "updateLocationSettings": ((403, 403, 200), lambda ids: {"slot_minutes": 30}),
    "createLeadBooking": ((422, 422, 422), lambda ids: {"starts_at": "2030-01-01T14:00:00Z"}),
    "listLeadSlots": ((200, 200, 200), None),
    "listBookings": ((200, 200, 200), None),
    "updateBooking": ((404, 404, 404), lambda ids: {"status": "cancelled"}),
}
ROLE_INDEX = {"front_desk": 0, "clinician": 1, "admin": 2}


async def test_every_staff_route_answers_each_role_as_expected(client: AsyncTestClient[Any], staff: Any) -> None:
    submitted = (await client.post("/api/intake", json=submission(ROUTINE_ANSWERS))).json()
    lead, screening = submitted["lead_id"], submitted["screening_id"]
    schema = (await client.get("/schema/openapi.json")).json()
    operations = [
        (method.upper(), path, op["operationId"])
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op
    ]
    staff_ops = [op for op in operations if op[2] not in PUBLIC]
    assert {op[2] for op in staff_ops} == set(EXPECTED), "a staff route has no expectation here: add one"

    unknown = str(uuid.uuid4())

    def url(path: str) -> str:
        return (
            path.replace("{lead_id}", lead)
            .replace("{screening_id}", screening)
            .replace("{staff_id}", staff.ids["front_desk"])
            .replace("{rule_id}", unknown)
            .replace("{exception_id}", unknown)
            .replace("{booking_id}", unknown)
            .replace("{location}", "boca_raton")
        )

    async def call(method: str, path: str, operation: str, headers: dict[str, str]) -> int:
        body_maker = EXPECTED[operation][1]
        kwargs: dict[str, Any] = {"headers": headers}
        if body_maker is not None:
            kwargs["json"] = body_maker(staff.ids)
        return (await client.request(method, url(path), **kwargs)).status_code

    failures = []
    for method, path, operation in staff_ops:
        status = await call(method, path, operation, {})
        if status != 401:
            failures.append((operation, "anonymous", status, 401))
        for role, index in ROLE_INDEX.items():
            headers = staff[role]
            if operation == "logout":  # a token of its own, so the others stay valid
                login = await client.post(
                    "/api/auth/login",
                    json={"email": f"{role}@clinic.example.com", "password": "correct horse battery staple"},
                )
                headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            status = await call(method, path, operation, headers)
            expected = EXPECTED[operation][0][index]
            if status != expected:
                failures.append((operation, role, status, expected))
        if "{lead_id}" in path and method == "GET":
            missing = await client.get(path.replace("{lead_id}", str(uuid.uuid4())), headers=staff["admin"])
            if missing.status_code != 404:
                failures.append((operation, "unknown id", missing.status_code, 404))
    assert failures == []


async def test_public_routes_need_no_token(client: AsyncTestClient[Any]) -> None:
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/api/intake/questionnaire")).status_code == 200
    assert (await client.get("/schema/openapi.json")).status_code == 200
