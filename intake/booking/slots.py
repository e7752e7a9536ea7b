"""Free consultation slots: a pure function of availability, bookings and the clock (no I/O).

How slots are made (the rules patients and staff see):

- **Per clinician, per location.** A weekly availability rule (weekday, local start-end) of a clinician
  at a location is cut into consultations of the location's length, one after another with the
  location's buffer between them: 30 minutes with a 10-minute buffer gives 09:00, 09:40, 10:20, ...;
  the last one ends by the rule's end. No settings row means 30 minutes and no buffer.
- **Clinic wall-clock time.** Rules are in the clinic's time zone (America/New_York): a 09:00-17:00
  rule starts at 09:00 local on both sides of a daylight-saving change (13:00 UTC in summer, 14:00 UTC
  in winter). A local time that does not exist (the hour skipped in March) is not offered; one that
  happens twice (the hour repeated in November) is offered once, at its first occurrence, so a
  patient never sees two slots that read the same.
- **A clinician is in one place at a time.** A live booking anywhere (any location) makes its
  clinician busy: no slot of theirs that overlaps it, with the larger of the two locations' buffers
  kept between the two consultations, is free.
- **Exceptions** (holidays, time off) remove every slot they overlap: one clinician's (staff_id),
  one location's (location), one clinician's at one location (both), or everyone's (neither).
- **Notice and horizon.** Only slots that start at least `min_notice` after now (2 hours) and before
  now + `horizon` (14 days) are offered.
- **`soon` leads first.** The earliest `soon_priority` hours (24 h) of free slots at a location,
  counted from its earliest free start, are held for leads whose screen says `soon` (or more
  urgent); a routine lead is offered only the slots after that. Staff booking by phone see every
  slot (`soon_priority` of zero) and no notice period.
- **Patients see start times.** Several clinicians free at 09:00 make one offered slot; booking it
  picks one of them (the one with the fewest consultations that day, then the lowest id).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

DEFAULT_SLOT_MINUTES = 30
DEFAULT_BUFFER_MINUTES = 0


@dataclass(frozen=True, slots=True)
class Timing:
    """A location's consultation length and the gap kept after each one."""

    slot_minutes: int = DEFAULT_SLOT_MINUTES
    buffer_minutes: int = DEFAULT_BUFFER_MINUTES

    @property
    def length(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.slot_minutes)

    @property
    def buffer(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.buffer_minutes)


@dataclass(frozen=True, slots=True)
class WeeklyHours:
    """One availability rule: a clinician at a location on a weekday (0 = Monday), local times."""

    staff_id: uuid.UUID
    location: str
    weekday: int
    start: dt.time
    end: dt.time


@dataclass(frozen=True, slots=True)
class Closure:
    """An exception: no slots in [starts_at, ends_at) for a clinician, a location, both, or everyone."""

    starts_at: dt.datetime
    ends_at: dt.datetime
    staff_id: uuid.UUID | None = None
    location: str | None = None

    def covers(self, slot: Slot) -> bool:
        return (
            (self.staff_id is None or self.staff_id == slot.staff_id)
            and (self.location is None or self.location == slot.location)
            and self.starts_at < slot.ends_at
            and slot.starts_at < self.ends_at
        )


@dataclass(frozen=True, slots=True)
class Busy:
    """A live booking of a clinician, at whichever location."""

    staff_id: uuid.UUID
    location: str
    starts_at: dt.datetime
    ends_at: dt.datetime


@dataclass(frozen=True, slots=True, order=True)
class Slot:
    starts_at: dt.datetime
    ends_at: dt.datetime
    staff_id: uuid.UUID
    location: str


def timing_of(timings: Mapping[str, Timing], location: str) -> Timing:
    return timings.get(location, Timing())


def clashes(slot: Slot, booking: Busy, timings: Mapping[str, Timing]) -> bool:
    """The clinician cannot take `slot` because of `booking` (the same clinician, overlapping or too close)."""
    if booking.staff_id != slot.staff_id:
        return False
    gap = max(timing_of(timings, slot.location).buffer, timing_of(timings, booking.location).buffer)
    return slot.starts_at < booking.ends_at + gap and booking.starts_at < slot.ends_at + gap


def is_free(slot: Slot, bookings: Iterable[Busy], closures: Iterable[Closure], timings: Mapping[str, Timing]) -> bool:
    return not any(clashes(slot, b, timings) for b in bookings) and not any(c.covers(slot) for c in closures)


def _local_days(first: dt.datetime, last: dt.datetime, zone: ZoneInfo) -> list[dt.date]:
    day, end = first.astimezone(zone).date(), last.astimezone(zone).date()
    days = []
    while day <= end:
        days.append(day)
        day += dt.timedelta(days=1)
    return days


def _exists(wall: dt.datetime, zone: ZoneInfo) -> bool:
    """False for a wall-clock time inside a spring-forward gap: it reads differently after a round trip."""
    aware = wall.replace(tzinfo=zone)
    return aware.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None) == wall


def rule_slots(rule: WeeklyHours, day: dt.date, timing: Timing, zone: ZoneInfo) -> list[Slot]:
    """The slots a rule makes on one local day, stepping in wall-clock time so they stay on the grid."""
    if day.weekday() != rule.weekday or timing.slot_minutes <= 0:
        return []
    step = timing.length + timing.buffer
    wall = dt.datetime.combine(day, rule.start)
    end_wall = dt.datetime.combine(day, rule.end)
    found = []
    while wall + timing.length <= end_wall:
        # fold=0 (the default) picks the first of a repeated local time; a skipped one is left out.
        if _exists(wall, zone):
            starts_at = wall.replace(tzinfo=zone).astimezone(dt.UTC)
            found.append(Slot(starts_at, starts_at + timing.length, rule.staff_id, rule.location))
        wall += step
    return found


def free_slots(
    *,
    location: str,
    rules: Iterable[WeeklyHours],
    closures: Sequence[Closure],
    bookings: Sequence[Busy],
    timings: Mapping[str, Timing],
    zone: ZoneInfo,
    now: dt.datetime,
    horizon: dt.timedelta,
    min_notice: dt.timedelta,
    soon_priority: dt.timedelta,
    soon: bool,
) -> list[Slot]:
    """Every free (clinician, start) at `location`, earliest first; see the module docstring for the rules."""
    earliest, until = now + min_notice, now + horizon
    timing = timing_of(timings, location)
    here = [r for r in rules if r.location == location]
    found: set[Slot] = set()
    for day in _local_days(earliest, until, zone):
        for rule in here:
            for slot in rule_slots(rule, day, timing, zone):
                if earliest <= slot.starts_at < until and is_free(slot, bookings, closures, timings):
                    found.add(slot)
    ordered = sorted(found)
    if ordered and not soon and soon_priority > dt.timedelta(0):
        held_until = ordered[0].starts_at + soon_priority
        ordered = [s for s in ordered if s.starts_at >= held_until]
    return ordered


@dataclass(frozen=True, slots=True)
class Offer:
    """What a patient sees: a start time at their location (one or more clinicians free then)."""

    starts_at: dt.datetime
    ends_at: dt.datetime
    location: str


def offers(slots: Iterable[Slot]) -> list[Offer]:
    """Distinct start times, merged across clinicians, earliest first."""
    seen: dict[dt.datetime, Offer] = {}
    for slot in sorted(slots):
        seen.setdefault(slot.starts_at, Offer(slot.starts_at, slot.ends_at, slot.location))
    return list(seen.values())


def clinicians_for(
    slots: Iterable[Slot], starts_at: dt.datetime, bookings: Iterable[Busy], zone: ZoneInfo
) -> list[Slot]:
    """The free slots starting at `starts_at`, the best clinician first: the fewest consultations that
    local day (spreads the work), then the lowest id (so the choice is stable)."""
    matching = [s for s in slots if s.starts_at == starts_at]
    day = starts_at.astimezone(zone).date()
    load = Counter(b.staff_id for b in bookings if b.starts_at.astimezone(zone).date() == day)
    return sorted(matching, key=lambda s: (load[s.staff_id], s.staff_id))


__all__ = [
    "Busy",
    "Closure",
    "Offer",
    "Slot",
    "Timing",
    "WeeklyHours",
    "clashes",
    "clinicians_for",
    "free_slots",
    "is_free",
    "offers",
    "rule_slots",
]
