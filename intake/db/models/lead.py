"""A lead: one person who filled the screen, with their contact details and current triage."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, SmallInteger, String, text
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base, CreatedMixin, IdMixin, utcnow
from intake.vocabulary import LeadStatus


def urgency_of(tier_rank: int, score: int) -> int:
    """One ascending key for "most urgent first": tier (emergency first), then higher score first.

    Stored so that keyset pages are a plain index range scan: `(urgency, created_at, id) > (...)`.
    """
    return tier_rank * 200 + (100 - score)


class Lead(IdMixin, CreatedMixin, Base):
    __tablename__ = "leads"
    __table_args__ = (
        # Carries search_text so that a search walking the urgency order reads only this index
        # (an index-only scan) rather than every table row the filter rejects.
        Index("ix_leads_urgency", "urgency", "created_at", "id", postgresql_include=["search_text"]),
        Index("ix_leads_created", "created_at", "id"),
        Index("ix_leads_status_urgency", "status", "urgency", "created_at", "id"),
        Index("ix_leads_status_created", "status", "created_at", "id"),
        Index(
            "ix_leads_queue",
            "urgency",
            "created_at",
            "id",
            postgresql_where=text("status = 'new'"),
            sqlite_where=text("status = 'new'"),
        ),
        Index(
            "ix_leads_search_trgm",
            "search_text",
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        ),
    )

    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    # Lower-cased normalised address: the key that recognises a returning person.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    phone: Mapped[str | None] = mapped_column(String(20), index=True)
    preferred_contact: Mapped[str] = mapped_column(String(10))
    location: Mapped[str] = mapped_column(String(20))
    zip: Mapped[str | None] = mapped_column(String(10))
    language: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(20), default=LeadStatus.NEW)
    # The latest screening's triage, kept on the lead so the queue sorts without a join.
    tier: Mapped[str] = mapped_column(String(10))
    tier_rank: Mapped[int] = mapped_column(SmallInteger)
    route: Mapped[str] = mapped_column(String(20))
    score: Mapped[int] = mapped_column(SmallInteger)
    urgency: Mapped[int] = mapped_column(SmallInteger)
    last_screened_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_reason: Mapped[str | None] = mapped_column(String(20))
    assigned_to_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_members.id"), index=True)
    last_contact_at: Mapped[dt.datetime | None]
    next_follow_up_at: Mapped[dt.datetime | None]
    unsubscribed_at: Mapped[dt.datetime | None]
    """Set by the unsubscribe link: no more non-transactional email."""
    # Lower-cased name, email and phone digits: what the staff search box matches (trigram index).
    search_text: Mapped[str] = mapped_column(String(500), default="")
