"""A follow-up email due at a time: a row with `due_at`, claimed by beat, never an ETA task."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base, CreatedMixin, IdMixin
from intake.vocabulary import FollowUpStatus


class FollowUp(IdMixin, CreatedMixin, Base):
    __tablename__ = "follow_ups"
    __table_args__ = (
        UniqueConstraint("lead_id", "kind"),  # once per (lead, kind), however often a sequence starts
        Index(
            "ix_follow_ups_due",
            "due_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    lead_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    sequence: Mapped[str] = mapped_column(String(30))
    kind: Mapped[str] = mapped_column(String(40))
    due_at: Mapped[dt.datetime]
    status: Mapped[str] = mapped_column(String(12), default=FollowUpStatus.PENDING)
    """pending → claimed (a delivery exists) | cancelled."""
    ref_id: Mapped[uuid.UUID | None]
    """The booking a booking reminder or thank-you is about."""
    claimed_at: Mapped[dt.datetime | None]
    cancelled_reason: Mapped[str | None] = mapped_column(String(40))
