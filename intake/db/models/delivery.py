"""A delivery: one email or webhook to send, at most once, with its attempts, for the lead's timeline."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, SmallInteger, String, text
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base, CreatedMixin, IdMixin, utcnow
from intake.vocabulary import DeliveryStatus


class Delivery(IdMixin, CreatedMixin, Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        Index(
            "ix_deliveries_unfinished",
            "status",
            "updated_at",
            postgresql_where=text("status IN ('queued', 'sending', 'failed')"),
            sqlite_where=text("status IN ('queued', 'sending', 'failed')"),
        ),
    )

    lead_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    screening_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("screenings.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    ref_id: Mapped[uuid.UUID | None]
    """What else the message is about: the booking of a confirmation or reminder."""
    channel: Mapped[str] = mapped_column(String(10))
    """`email` or `webhook`."""
    # (lead, screening, kind): a task that runs twice finds the row and sends nothing more.
    dedupe_key: Mapped[str] = mapped_column(String(120), unique=True)
    queue: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(10), default=DeliveryStatus.QUEUED)
    """queued → sending → sent; failed (will retry) or dead (given up)."""
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    last_error: Mapped[str | None] = mapped_column(String(200))
    """An SMTP or HTTP status and class of error; never an address or content."""
    claimed_at: Mapped[dt.datetime | None]
    next_attempt_at: Mapped[dt.datetime | None]
    sent_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
