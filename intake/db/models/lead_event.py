"""A change in a lead's pipeline: status moves and assignments, for the lead's timeline."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base, CreatedMixin, IdMixin


class LeadEvent(IdMixin, CreatedMixin, Base):
    __tablename__ = "lead_events"

    lead_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_members.id"))
    """None when the system made the change (a patient booking, an unsubscribe)."""
    kind: Mapped[str] = mapped_column(String(30))
    """`status_changed` or `assigned`."""
    from_value: Mapped[str | None] = mapped_column(String(40))
    to_value: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(String(40))
