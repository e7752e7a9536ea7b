"""Consent a person gave with a screening: the privacy notice they accepted and what we may send."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Select, String, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from intake.db.base import Base, CreatedMixin, IdMixin

if TYPE_CHECKING:
    from intake.db.models.lead import Lead
    from intake.db.models.screening import Screening


class Consent(IdMixin, CreatedMixin, Base):
    __tablename__ = "consents"

    lead_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    screening_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("screenings.id", ondelete="CASCADE"))
    privacy_notice_version: Mapped[str] = mapped_column(String(32))
    privacy_accepted_at: Mapped[dt.datetime]
    email_followup: Mapped[bool]
    sms: Mapped[bool]

    lead: Mapped[Lead] = relationship(lazy="raise")
    screening: Mapped[Screening] = relationship(lazy="raise")

    @classmethod
    def latest_of(cls, lead_id: uuid.UUID) -> Select[tuple[Consent]]:
        """The person's newest consent: the one that says what we may send them now."""
        return select(cls).where(cls.lead_id == lead_id).order_by(cls.created_at.desc()).limit(1)
