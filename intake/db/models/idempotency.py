"""The first answer to a request sent with an Idempotency-Key, replayed to its retries."""

from __future__ import annotations

from typing import Any

from sqlalchemy import SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base, CreatedMixin


class IdempotencyRecord(CreatedMixin, Base):
    __tablename__ = "idempotency_records"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(SmallInteger)
    response: Mapped[dict[str, Any]]
