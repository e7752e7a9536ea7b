"""Staff accounts of each role, signed in through the API, for tests of the staff routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.testing import AsyncTestClient

from intake.db.engine import create_engine, create_sessionmaker
from intake.settings import Settings
from intake.staff.accounts import StaffService

PASSWORD = "correct horse battery staple"
ROLES = ("front_desk", "clinician", "admin")


@dataclass
class Staff:
    ids: dict[str, str]
    headers: dict[str, dict[str, str]]

    def __getitem__(self, role: str) -> dict[str, str]:
        return self.headers[role]


async def make_staff(settings: Settings, client: AsyncTestClient[Any]) -> Staff:
    engine = create_engine(settings.db)
    service = StaffService(create_sessionmaker(engine), settings.auth)
    ids: dict[str, str] = {}
    for role in ROLES:
        member = await service.create(
            email=f"{role}@clinic.example.com",
            name=role.replace("_", " ").title(),
            role=role,
            password=PASSWORD,
        )
        ids[role] = str(member.id)
    await engine.dispose()
    headers: dict[str, dict[str, str]] = {}
    for role in ROLES:
        response = await client.post(
            "/api/auth/login", json={"email": f"{role}@clinic.example.com", "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        headers[role] = {"Authorization": f"Bearer {response.json()['access_token']}"}
    return Staff(ids, headers)
