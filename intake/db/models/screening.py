"""A screening: one filled symptom screen, scored once by the rule set in force, never re-scored."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from intake.db.base import Base, CreatedMixin, IdMixin

if TYPE_CHECKING:
    from intake.db.models.lead import Lead


class Screening(IdMixin, CreatedMixin, Base):
    __tablename__ = "screenings"

    lead_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    language: Mapped[str] = mapped_column(String(2))
    answers: Mapped[dict[str, Any]]
    rule_set_version: Mapped[str] = mapped_column(String(32))
    tier: Mapped[str] = mapped_column(String(10))
    route: Mapped[str] = mapped_column(String(20))
    score: Mapped[int] = mapped_column(SmallInteger)
    # [{code, tier, text}] as the person was shown them, in their language.
    reasons: Mapped[list[Any]]
    # Set on a staff re-scoring: the screening whose answers this one scored again.
    rescored_from_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("screenings.id"))

    # Declared so the unit of work inserts the lead first; never lazy-loaded (async sessions).
    lead: Mapped[Lead] = relationship(lazy="raise")
