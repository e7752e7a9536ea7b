"""Unsubscribe: takes effect at once, idempotent, stops every follow-up and non-transactional email."""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from intake import tokens
from intake.db.base import new_id, utcnow
from intake.db.models import Delivery, Lead, LeadEvent
from intake.messaging import followups, kinds
from intake.problems import NotFound
from intake.settings import Settings

log = structlog.get_logger(__name__)


class UnsubscribeService:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings):
        self._sessionmaker = sessionmaker
        self._settings = settings

    def lead_of(self, token: str) -> uuid.UUID:
        try:
            return tokens.verify(tokens.jwt_secret(self._settings), tokens.UNSUBSCRIBE, token)
        except tokens.BadToken:
            raise NotFound("unsubscribe link") from None

    async def unsubscribe(self, token: str) -> str:
        """Unsubscribe the link's person; returns their language for the page. A second call changes nothing."""
        lead_id = self.lead_of(token)
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            lead = await session.get(Lead, lead_id, with_for_update=True)
            if lead is None:
                raise NotFound("unsubscribe link")
            if lead.unsubscribed_at is None:
                lead.unsubscribed_at = now
                session.add(LeadEvent(id=new_id(), created_at=now, lead_id=lead.id, actor_id=None, kind="unsubscribed"))
                await cancel_marketing(session, lead.id)
                await followups.stop_all(session, lead.id, "unsubscribed")
                log.info("lead.unsubscribed", lead_id=str(lead.id))
            return lead.language


async def cancel_marketing(session: AsyncSession, lead_id: uuid.UUID) -> None:
    """Queued emails that are not transactional (invitations, reminders) do not go out any more."""
    await session.execute(
        update(Delivery)
        .where(
            Delivery.lead_id == lead_id,
            Delivery.status.in_(("queued", "failed")),
            Delivery.kind.not_in((*kinds.TRANSACTIONAL_KINDS, *kinds.STAFF_KINDS)),
        )
        .values(status="cancelled", last_error="stopped: unsubscribed", updated_at=utcnow())
    )
