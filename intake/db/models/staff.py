"""A staff member: front desk, clinician or admin, with an argon2 password hash, lockout state and when the
password was last set."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base, CreatedMixin, IdMixin, utcnow


class StaffMember(IdMixin, CreatedMixin, Base):
    __tablename__ = "staff_members"

    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(default=False)
    failed_logins: Mapped[int] = mapped_column(SmallInteger, default=0)
    locked_until: Mapped[dt.datetime | None]
    password_changed_at: Mapped[dt.datetime | None]
    """When the password was last set (None: not since this column came). Tokens issued before it no longer work."""
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
