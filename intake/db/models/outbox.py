"""Outbox: work written in the same transaction as the data it is about, published after commit."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Index, SmallInteger, String, text
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base, CreatedMixin, IdMixin


class OutboxMessage(IdMixin, CreatedMixin, Base):
    __tablename__ = "outbox_messages"
    __table_args__ = (
        # The sweep looks only at what is not done: keep that index small.
        Index(
            "ix_outbox_messages_pending",
            "created_at",
            postgresql_where=text("done_at IS NULL"),
            sqlite_where=text("done_at IS NULL"),
        ),
    )

    topic: Mapped[str] = mapped_column(String(40))
    # The row the work is about (a screening for `route_screening`); ids only, never patient data.
    ref_id: Mapped[uuid.UUID]
    queue: Mapped[str] = mapped_column(String(20))
    published_at: Mapped[dt.datetime | None]
    publish_count: Mapped[int] = mapped_column(SmallInteger, default=0)
    done_at: Mapped[dt.datetime | None]
