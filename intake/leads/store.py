"""Writes one submission's rows in one transaction: the busiest write of the service, kept lean.

Core statements built once, on one connection: no unit of work and no identity map, which cost
more CPU per submission than the driver itself (bench/intake.py's profile).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol, cast

from sqlalchemy import Table, bindparam, case, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from intake.db.models import Lead

_leads = cast(Table, Lead.__table__)
_FIND_LEAD = (
    select(_leads.c.id, _leads.c.phone)
    .where(or_(_leads.c.email == bindparam("email"), _leads.c.phone == bindparam("phone")))
    .order_by(case((_leads.c.email == bindparam("email"), 0), else_=1), _leads.c.created_at)
    .limit(1)
    .with_for_update()
)


class SubmissionWriter(Protocol):
    async def find_lead(self, email: str, phone: str | None) -> tuple[uuid.UUID, str | None] | None:
        """The person's lead (the same email first, else the same phone), locked until commit: id, phone."""

    async def insert(self, table: Table, row: dict[str, Any]) -> None: ...

    async def update_lead(self, lead_id: uuid.UUID, values: dict[str, Any]) -> None: ...


@asynccontextmanager
async def submission_writer(engine: AsyncEngine) -> AsyncIterator[SubmissionWriter]:
    """A writer inside one transaction, committed when the block ends (rolled back on an error)."""
    async with engine.begin() as conn:
        yield _CoreWriter(conn)


class _CoreWriter:
    def __init__(self, conn: AsyncConnection):
        self._conn = conn

    async def find_lead(self, email: str, phone: str | None) -> tuple[uuid.UUID, str | None] | None:
        row = (await self._conn.execute(_FIND_LEAD, {"email": email, "phone": phone})).first()
        return (row.id, row.phone) if row is not None else None

    async def insert(self, table: Table, row: dict[str, Any]) -> None:
        await self._conn.execute(_insert(table), row)

    async def update_lead(self, lead_id: uuid.UUID, values: dict[str, Any]) -> None:
        await self._conn.execute(_UPDATE_LEAD, {"lead_id_": lead_id, **values})


_UPDATE_LEAD = update(_leads).where(_leads.c.id == bindparam("lead_id_"))


@functools.cache
def _insert(table: Table) -> Any:
    return insert(table)


__all__ = ["SubmissionWriter", "submission_writer"]
