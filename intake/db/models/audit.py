"""The append-only audit trail: who looked at or changed what, when. Field names only, never values."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base, IdMixin, utcnow


class AuditEntry(IdMixin, Base):
    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_at_id", "at", "id"),)

    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_members.id"), index=True)
    action: Mapped[str] = mapped_column(String(40))
    lead_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    """No foreign key: the trail outlives the lead it speaks of."""
    target_staff_id: Mapped[uuid.UUID | None]
    fields: Mapped[list[Any]]
    request_id: Mapped[str | None] = mapped_column(String(64))
