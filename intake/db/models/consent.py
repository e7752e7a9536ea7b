"""Consent a person gave with a screening: the privacy notice they accepted and what we may send."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String
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
