"""A staff note on a lead (a call made, what was said)."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, Text
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base, CreatedMixin, IdMixin


class LeadNote(IdMixin, CreatedMixin, Base):
    __tablename__ = "lead_notes"

    lead_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_members.id"))
    body: Mapped[str] = mapped_column(Text)
