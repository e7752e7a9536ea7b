"""Bookings of the free consultation, and the availability they are cut from."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, SmallInteger, String, Time, text
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base, CreatedMixin, IdMixin, utcnow
from intake.vocabulary import BookingStatus


class LocationSettings(Base):
    """Consultation length and buffer per location (admin-set)."""

    __tablename__ = "location_settings"

    location: Mapped[str] = mapped_column(String(20), primary_key=True)
    slot_minutes: Mapped[int] = mapped_column(SmallInteger, default=30)
    buffer_minutes: Mapped[int] = mapped_column(SmallInteger, default=0)


class AvailabilityRule(IdMixin, CreatedMixin, Base):
    """A clinician's weekly hours at a location, in clinic local time (America/New_York)."""

    __tablename__ = "availability_rules"

    staff_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_members.id", ondelete="CASCADE"), index=True)
    location: Mapped[str] = mapped_column(String(20))
    weekday: Mapped[int] = mapped_column(SmallInteger)
    """0 = Monday ... 6 = Sunday."""
    start_time: Mapped[dt.time] = mapped_column(Time())
    end_time: Mapped[dt.time] = mapped_column(Time())


class AvailabilityException(IdMixin, CreatedMixin, Base):
    """Time off or a holiday: no slots in [starts_at, ends_at) for one clinician, a location, or everyone."""

    __tablename__ = "availability_exceptions"

    staff_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_members.id", ondelete="CASCADE"))
    location: Mapped[str | None] = mapped_column(String(20))
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    reason: Mapped[str | None] = mapped_column(String(200))


class Booking(IdMixin, CreatedMixin, Base):
    __tablename__ = "bookings"
    __table_args__ = (
        # The database, not the code, guarantees a clinician is never booked twice at one time,
        # and a lead holds at most one live booking.
        Index(
            "uq_bookings_staff_start_live",
            "staff_id",
            "starts_at",
            unique=True,
            postgresql_where=text("status = 'booked'"),
            sqlite_where=text("status = 'booked'"),
        ),
        Index(
            "uq_bookings_lead_live",
            "lead_id",
            unique=True,
            postgresql_where=text("status = 'booked'"),
            sqlite_where=text("status = 'booked'"),
        ),
        Index("ix_bookings_starts_at", "starts_at"),
    )

    lead_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    staff_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_members.id"))
    location: Mapped[str] = mapped_column(String(20))
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    status: Mapped[str] = mapped_column(String(12), default=BookingStatus.BOOKED)
    """booked, cancelled, attended, no_show."""
    booked_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_members.id"))
    """None: the patient booked through their link."""
    rescheduled_from_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("bookings.id"))
    cancelled_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
