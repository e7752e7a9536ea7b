"""A lead: one person who filled the screen, with their contact details and current triage."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base, CreatedMixin, IdMixin, utcnow


class Lead(IdMixin, CreatedMixin, Base):
    __tablename__ = "leads"

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
    status: Mapped[str] = mapped_column(String(20), default="new")
    # The latest screening's triage, kept on the lead so the queue sorts without a join.
    tier: Mapped[str] = mapped_column(String(10))
    tier_rank: Mapped[int] = mapped_column(SmallInteger)
    route: Mapped[str] = mapped_column(String(20))
    score: Mapped[int] = mapped_column(SmallInteger)
    last_screened_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
