"""A worker's or the scheduler's heartbeat: the API reads it to tell whether the pipeline is running."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base


class WorkerHeartbeat(Base):
    __tablename__ = "worker_heartbeats"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    """`role:host:pid`, one row per running process; a process that stops cleanly removes its row."""
    role: Mapped[str] = mapped_column(String(20))
    """`worker` or `scheduler`."""
    host: Mapped[str] = mapped_column(String(120))
    pid: Mapped[int]
    started_at: Mapped[dt.datetime]
    beat_at: Mapped[dt.datetime]
