"""Unsubscribe: takes effect at once (on a POST), idempotent, stops every follow-up and non-transactional email."""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from intake import tokens
from intake.db.base import utcnow
from intake.db.models import Lead
from intake.leads import lifecycle
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

    async def state(self, token: str) -> tuple[str, bool]:
        """The link's person's language, and whether they are unsubscribed already. Changes nothing: a GET
        (a mail scanner fetching the link, too) only reads."""
        lead_id = self.lead_of(token)
        async with self._sessionmaker() as session:
            lead = await session.get(Lead, lead_id)
            if lead is None:
                raise NotFound("unsubscribe link")
            return lead.language, lead.unsubscribed_at is not None

    async def unsubscribe(self, token: str) -> str:
        """Unsubscribe the link's person; returns their language for the page. A second call changes nothing."""
        lead_id = self.lead_of(token)
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            lead = await session.get(Lead, lead_id, with_for_update=True)
            if lead is None:
                raise NotFound("unsubscribe link")
            if await lifecycle.unsubscribe(session, lead, now=now):
                log.info("lead.unsubscribed", lead_id=str(lead.id))
            return lead.language
