"""Slot computation: wall-clock rules across daylight-saving changes, exceptions, buffers, busy clinicians, the soon hold."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from intake.booking.slots import (
    Busy,
    Closure,
    Slot,
    Timing,
    WeeklyHours,
    clinicians_for,
    free_slots,
    offers,
)

NY = ZoneInfo("America/New_York")
UTC = dt.UTC
ANA = uuid.UUID(int=1)
BEN = uuid.UUID(int=2)
NINE_TO_FIVE = (dt.time(9), dt.time(17))


def every_day(
    staff_id: uuid.UUID, location: str = "boca_raton", hours: tuple[dt.time, dt.time] = NINE_TO_FIVE
) -> list[WeeklyHours]:
    return [WeeklyHours(staff_id, location, weekday, *hours) for weekday in range(7)]


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=NY).astimezone(UTC)


def compute(**overrides: Any) -> list[Slot]:
    args: dict[str, Any] = {
        "location": "boca_raton",
        "rules": every_day(ANA),
        "closures": [],
        "bookings": [],
        "timings": {},
        "zone": NY,
        "now": local(2026, 3, 2, 6),  # a Monday, before opening
        "horizon": dt.timedelta(days=14),
        "min_notice": dt.timedelta(hours=2),
        "soon_priority": dt.timedelta(0),
        "soon": False,
    }
    args.update(overrides)
    return free_slots(**args)


def by_local_day(slots: list[Slot]) -> dict[dt.date, list[dt.datetime]]:
    days: dict[dt.date, list[dt.datetime]] = {}
    for slot in slots:
        start = slot.starts_at.astimezone(NY)
        days.setdefault(start.date(), []).append(start)
    return days


# --- daylight saving ---------------------------------------------------------------------------


def test_spring_forward_keeps_nine_oclock_local_on_both_sides() -> None:
    slots = compute(now=local(2026, 3, 6, 6))  # Friday before the change on Sunday March 8
    days = by_local_day(slots)
    for day in (dt.date(2026, 3, 7), dt.date(2026, 3, 8), dt.date(2026, 3, 9)):
        assert days[day][0].time() == dt.time(9, 0)
        assert days[day][-1].time() == dt.time(16, 30)
        assert len(days[day]) == 16
    first_utc = {s.starts_at.astimezone(NY).date(): s.starts_at for s in reversed(slots)}
    assert first_utc[dt.date(2026, 3, 7)] == dt.datetime(2026, 3, 7, 14, 0, tzinfo=UTC)  # EST, UTC-5
    assert first_utc[dt.date(2026, 3, 8)] == dt.datetime(2026, 3, 8, 13, 0, tzinfo=UTC)  # EDT, UTC-4
    assert first_utc[dt.date(2026, 3, 9)] == dt.datetime(2026, 3, 9, 13, 0, tzinfo=UTC)
    assert all(s.ends_at - s.starts_at == dt.timedelta(minutes=30) for s in slots)


def test_fall_back_keeps_nine_oclock_local_on_both_sides() -> None:
    slots = compute(now=local(2026, 10, 30, 6))  # Friday before the change on Sunday November 1
    days = by_local_day(slots)
    for day in (dt.date(2026, 10, 31), dt.date(2026, 11, 1), dt.date(2026, 11, 2)):
        assert [t.time() for t in days[day]][:2] == [dt.time(9, 0), dt.time(9, 30)]
        assert len(days[day]) == 16
    first_utc = {s.starts_at.astimezone(NY).date(): s.starts_at for s in reversed(slots)}
    assert first_utc[dt.date(2026, 10, 31)] == dt.datetime(2026, 10, 31, 13, 0, tzinfo=UTC)  # EDT
    assert first_utc[dt.date(2026, 11, 1)] == dt.datetime(2026, 11, 1, 14, 0, tzinfo=UTC)  # EST


def test_the_skipped_hour_offers_no_slot_and_nothing_overlaps() -> None:
    rules = [WeeklyHours(ANA, "boca_raton", 6, dt.time(1), dt.time(4))]  # Sunday 01:00-04:00
    slots = compute(rules=rules, now=local(2026, 3, 6, 6), min_notice=dt.timedelta(0))
    march_8 = [s for s in slots if s.starts_at.astimezone(NY).date() == dt.date(2026, 3, 8)]
    assert [s.starts_at.astimezone(NY).strftime("%H:%M") for s in march_8] == ["01:00", "01:30", "03:00", "03:30"]
    for earlier, later in itertools.pairwise(march_8):
        assert earlier.ends_at <= later.starts_at


def test_the_repeated_hour_is_offered_once_at_its_first_occurrence() -> None:
    rules = [WeeklyHours(ANA, "boca_raton", 6, dt.time(0, 30), dt.time(3))]  # Sunday 00:30-03:00
    slots = compute(rules=rules, now=local(2026, 10, 30, 6), min_notice=dt.timedelta(0))
    nov_1 = [s for s in slots if s.starts_at.astimezone(NY).date() == dt.date(2026, 11, 1)]
    readings = [s.starts_at.astimezone(NY).strftime("%H:%M") for s in nov_1]
    assert readings == ["00:30", "01:00", "01:30", "02:00", "02:30"]
    one_thirty = nov_1[2]
    assert one_thirty.starts_at == dt.datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT, not EST
    assert len({s.starts_at for s in nov_1}) == len(nov_1)


# --- exceptions, buffer, busy clinicians ---------------------------------------------------------


def test_exceptions_remove_overlapping_slots_for_whom_they_name() -> None:
    rules = every_day(ANA) + every_day(BEN)
    tuesday = dt.date(2026, 3, 3)
    ana_off = Closure(local(2026, 3, 3, 10, 15), local(2026, 3, 3, 10, 45), staff_id=ANA)
    slots = compute(rules=rules, closures=[ana_off])
    at = {
        (s.staff_id, s.starts_at.astimezone(NY).strftime("%H:%M"))
        for s in slots
        if s.starts_at.astimezone(NY).date() == tuesday
    }
    assert (ANA, "10:00") not in at and (ANA, "10:30") not in at  # both overlap 10:15-10:45
    assert (ANA, "09:30") in at and (ANA, "11:00") in at  # touching is not overlapping
    assert (BEN, "10:00") in at and (BEN, "10:30") in at

    holiday = Closure(local(2026, 3, 3, 0), local(2026, 3, 4, 0))  # everyone, everywhere
    assert not [s for s in compute(rules=rules, closures=[holiday]) if s.starts_at.astimezone(NY).date() == tuesday]

    closed_here = Closure(local(2026, 3, 3, 0), local(2026, 3, 4, 0), location="boca_raton")
    closed_elsewhere = Closure(local(2026, 3, 3, 0), local(2026, 3, 4, 0), location="pompano_beach")
    assert not [s for s in compute(rules=rules, closures=[closed_here]) if s.starts_at.astimezone(NY).date() == tuesday]
    assert (
        len(
            [
                s
                for s in compute(rules=rules, closures=[closed_elsewhere])
                if s.starts_at.astimezone(NY).date() == tuesday
            ]
        )
        == 32
    )


def test_length_and_buffer_space_the_slots() -> None:
    slots = compute(timings={"boca_raton": Timing(slot_minutes=30, buffer_minutes=10)})
    tuesday = by_local_day(slots)[dt.date(2026, 3, 3)]
    assert [t.strftime("%H:%M") for t in tuesday[:4]] == ["09:00", "09:40", "10:20", "11:00"]
    assert tuesday[-1].strftime("%H:%M") == "16:20"  # ends 16:50; 17:00 would end after closing
    long = compute(timings={"boca_raton": Timing(slot_minutes=45)})
    tuesday = [s for s in long if s.starts_at.astimezone(NY).date() == dt.date(2026, 3, 3)]
    assert tuesday[0].ends_at - tuesday[0].starts_at == dt.timedelta(minutes=45)
    assert tuesday[-1].ends_at <= local(2026, 3, 3, 17)


def test_a_booking_at_another_location_blocks_the_clinician_with_the_buffer() -> None:
    virtual = Busy(ANA, "virtual", local(2026, 3, 3, 10, 15), local(2026, 3, 3, 11, 0))  # 45 minutes, off the grid
    slots = compute(bookings=[virtual])
    tuesday = [t.strftime("%H:%M") for t in by_local_day(slots)[dt.date(2026, 3, 3)]]
    assert "10:00" not in tuesday and "10:30" not in tuesday
    assert "09:30" in tuesday and "11:00" in tuesday
    with_buffer = compute(bookings=[virtual], timings={"virtual": Timing(45, 15)})
    tuesday = [t.strftime("%H:%M") for t in by_local_day(with_buffer)[dt.date(2026, 3, 3)]]
    assert "11:00" not in tuesday  # starts less than 15 minutes after the visit ends
    assert "09:30" in tuesday and "11:30" in tuesday  # exactly 15 minutes apart is fine
    someone_else = Busy(BEN, "boca_raton", local(2026, 3, 3, 10), local(2026, 3, 3, 10, 30))
    assert len(compute(bookings=[someone_else])) == len(compute())


def test_notice_and_horizon() -> None:
    now = local(2026, 3, 3, 8, 30)
    slots = compute(now=now)
    assert slots[0].starts_at == local(2026, 3, 3, 10, 30)  # two hours' notice
    assert slots[-1].starts_at < now + dt.timedelta(days=14)
    assert slots[-1].starts_at.astimezone(NY).date() == dt.date(2026, 3, 17)
    assert all(s.starts_at >= now + dt.timedelta(hours=2) for s in slots)


def test_the_first_day_of_free_slots_is_held_for_soon_leads() -> None:
    now = local(2026, 3, 2, 6)
    hold = {"soon_priority": dt.timedelta(hours=24)}
    soon = compute(now=now, soon=True, **hold)
    routine = compute(now=now, soon=False, **hold)
    assert soon[0].starts_at == local(2026, 3, 2, 9)
    assert routine[0].starts_at == local(2026, 3, 3, 9)  # 24 hours after the earliest free start
    assert set(routine) < set(soon)
    # Counted from the earliest free slot: over a closed weekend the held day is Monday, not Saturday.
    weekdays = [WeeklyHours(ANA, "boca_raton", d, *NINE_TO_FIVE) for d in range(5)]
    friday_night = local(2026, 3, 6, 20)
    routine = compute(rules=weekdays, now=friday_night, soon=False, **hold)
    assert routine[0].starts_at == local(2026, 3, 10, 9)
    # Taken slots are not counted: the hold moves with the earliest free time.
    taken = [Busy(ANA, "boca_raton", s.starts_at, s.ends_at) for s in compute(now=now)[:16]]
    assert compute(now=now, soon=False, bookings=taken, **hold)[0].starts_at == local(2026, 3, 4, 9)


def test_patients_see_each_start_once_and_the_least_busy_clinician_gets_it() -> None:
    rules = every_day(ANA) + every_day(BEN)
    busy_ana = Busy(ANA, "boca_raton", local(2026, 3, 3, 9), local(2026, 3, 3, 9, 30))
    slots = compute(rules=rules, bookings=[busy_ana])
    starts = offers(slots)
    assert len(starts) == len({s.starts_at for s in slots})
    assert starts[0].starts_at == local(2026, 3, 2, 9)
    ten = local(2026, 3, 3, 10)
    assert [s.staff_id for s in clinicians_for(slots, ten, [busy_ana], NY)] == [BEN, ANA]
    assert [s.staff_id for s in clinicians_for(slots, local(2026, 3, 2, 10), [busy_ana], NY)] == [ANA, BEN]
    assert clinicians_for(slots, local(2026, 3, 3, 10, 10), [busy_ana], NY) == []


def test_only_rules_at_the_location_count() -> None:
    rules = every_day(ANA, "pompano_beach") + every_day(BEN, "virtual", (dt.time(18), dt.time(20)))
    assert compute(rules=rules) == []
    virtual = compute(rules=rules, location="virtual")
    assert {s.staff_id for s in virtual} == {BEN} and {s.location for s in virtual} == {"virtual"}


@settings(max_examples=200, deadline=None)
@given(
    bookings=st.lists(
        st.tuples(
            st.sampled_from([ANA, BEN]),
            st.sampled_from(["boca_raton", "virtual"]),
            st.integers(min_value=0, max_value=14 * 24 * 4),
            st.integers(min_value=1, max_value=12),
        ),
        max_size=15,
    ),
    buffer=st.integers(min_value=0, max_value=30),
    slot=st.sampled_from([20, 30, 45, 60]),
    soon=st.booleans(),
)
def test_no_free_slot_ever_clashes_or_leaves_the_window(
    bookings: list[tuple[uuid.UUID, str, int, int]], buffer: int, slot: int, soon: bool
) -> None:
    now = local(2026, 10, 26, 7)  # the window spans the November change
    busy = [
        Busy(staff, place, now + dt.timedelta(minutes=15 * start), now + dt.timedelta(minutes=15 * (start + length)))
        for staff, place, start, length in bookings
    ]
    timings = {"boca_raton": Timing(slot, buffer), "virtual": Timing(30, buffer)}
    found = compute(
        rules=every_day(ANA) + every_day(BEN),
        bookings=busy,
        timings=timings,
        now=now,
        soon=soon,
        soon_priority=dt.timedelta(hours=24),
    )
    gap = dt.timedelta(minutes=buffer)
    for s in found:
        assert now + dt.timedelta(hours=2) <= s.starts_at < now + dt.timedelta(days=14)
        assert s.ends_at - s.starts_at == dt.timedelta(minutes=slot)
        local_start, local_end = s.starts_at.astimezone(NY), s.ends_at.astimezone(NY)
        assert dt.time(9) <= local_start.time() and local_end.time() <= dt.time(17)
        for b in busy:
            if b.staff_id == s.staff_id:
                assert s.ends_at + gap <= b.starts_at or b.ends_at + gap <= s.starts_at
    mine = sorted(s for s in found if s.staff_id == ANA)
    for earlier, later in itertools.pairwise(mine):
        assert earlier.ends_at <= later.starts_at
