"""What both booking services are made of: free slots, placement, views and what follows a change."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from intake.booking.changes import Changes
from intake.booking.free_slots import FreeSlots
from intake.booking.placement import Placement
from intake.booking.views import Views
from intake.messaging.publishing.publisher import BackgroundPublisher
from intake.settings import Settings


class BookingParts:
    """The patient's and the staff's booking services share these; each service is one of these plus its flows."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, publisher: BackgroundPublisher
    ):
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._slots = FreeSlots(settings)
        self._placement = Placement(sessionmaker, settings, self._slots)
        self._views = Views(settings)
        self._changes = Changes(settings, publisher)


__all__ = ["BookingParts"]
