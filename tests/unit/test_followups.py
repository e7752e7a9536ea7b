"""Follow-up timing: offsets, the sending window and daylight-saving edges; the sequences file; stop rules."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from intake.messaging.followups.schedule import (
    SequenceError,
    Window,
    apply_offset,
    parse_sequences,
    sequences,
    stop_reason,
)

NY = ZoneInfo("America/New_York")
WINDOW = Window.parse("America/New_York", "08:00-20:00")


def ny(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=NY).astimezone(dt.UTC)  # type: ignore[misc]


def test_inside_the_window_nothing_moves() -> None:
    assert WINDOW.place(ny(2026, 11, 24, 10, 0)) == ny(2026, 11, 24, 10, 0)
    assert WINDOW.place(ny(2026, 11, 24, 8, 0)) == ny(2026, 11, 24, 8, 0)


@pytest.mark.parametrize(
    ("moment", "placed"),
    [
        (ny(2026, 11, 24, 20, 0), ny(2026, 11, 25, 8, 0)),  # 20:00 is outside: [08:00, 20:00)
        (ny(2026, 11, 24, 23, 30), ny(2026, 11, 25, 8, 0)),
        (ny(2026, 11, 24, 6, 15), ny(2026, 11, 24, 8, 0)),  # early morning: the same day's opening
        # Daylight saving ends on 2026-11-01 at 02:00: the next morning is 08:00 EST, 13:00 UTC.
        (ny(2026, 10, 31, 22, 0), dt.datetime(2026, 11, 1, 13, 0, tzinfo=dt.UTC)),
        # Daylight saving starts on 2026-03-08 at 02:00: the next morning is 08:00 EDT, 12:00 UTC.
        (ny(2026, 3, 7, 21, 0), dt.datetime(2026, 3, 8, 12, 0, tzinfo=dt.UTC)),
    ],
)
def test_outside_the_window_moves_to_the_next_morning(moment: dt.datetime, placed: dt.datetime) -> None:
    assert WINDOW.place(moment) == placed


def test_day_offsets_keep_the_clock_time_across_daylight_saving() -> None:
    saturday = ny(2026, 10, 31, 10, 0)  # EDT
    assert apply_offset(saturday, "1d", NY).astimezone(NY).hour == 10  # Sunday 10:00 EST: 25 hours later
    assert apply_offset(saturday, "1d", NY) - saturday == dt.timedelta(hours=25)
    assert apply_offset(ny(2026, 3, 7, 10, 0), "1d", NY) - ny(2026, 3, 7, 10, 0) == dt.timedelta(hours=23)


def test_hour_offsets_are_absolute() -> None:
    booking = ny(2026, 11, 1, 10, 0)  # Sunday 10:00 EST, eight hours after clocks went back
    reminder = apply_offset(booking, "-24h", NY)
    assert booking - reminder == dt.timedelta(hours=24)
    assert reminder.astimezone(NY).hour == 11  # Saturday 11:00 EDT: "24 hours before" is a real day


def test_the_sequences_file_defines_the_issue_s_sequences() -> None:
    found = sequences()
    assert [s.offset for s in found["book_consultation"].steps] == ["1d", "3d", "7d"]
    assert [s.offset for s in found["booked"].steps] == ["-24h"]
    assert [s.offset for s in found["seek_care_now"].steps] == ["48h"]
    assert found["attended"].steps[0].kind == "thank_you"
    for name in ("book_consultation", "seek_care_now"):
        assert {"booked", "unsubscribed", "do_not_contact", "closed", "converted"} <= set(found[name].stop_on)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"sequences": {"x": {"anchor": "routed", "stop_on": ["rain"], "steps": []}}}, "unknown stop condition"),
        ({"sequences": {"x": {"anchor": "someday", "steps": []}}}, "anchor"),
        (
            {"sequences": {"x": {"anchor": "routed", "steps": [{"kind": "a", "offset": "soon", "template": "t"}]}}},
            "offset",
        ),
    ],
)
def test_a_malformed_sequences_file_is_refused_with_the_problem_named(raw: dict[str, object], message: str) -> None:
    with pytest.raises(SequenceError, match=message):
        parse_sequences(raw)


def _lead(**changes: object) -> SimpleNamespace:
    return SimpleNamespace(**{"unsubscribed_at": None, "closed_reason": None, "status": "new", **changes})


def test_stop_reasons_at_send_time() -> None:
    assert stop_reason(_lead(), "booking_reminder_1", has_live_booking=False, consented=True) is None  # type: ignore[arg-type]
    assert stop_reason(_lead(), "booking_reminder_1", has_live_booking=True, consented=True) == "booked"  # type: ignore[arg-type]
    assert stop_reason(_lead(), "consult_reminder", has_live_booking=True, consented=True) is None  # type: ignore[arg-type]
    unsubscribed = _lead(unsubscribed_at=dt.datetime.now(dt.UTC))
    assert stop_reason(unsubscribed, "consult_reminder", has_live_booking=True, consented=True) == "unsubscribed"  # type: ignore[arg-type]
    assert (
        stop_reason(_lead(status="converted"), "seek_care_checkin", has_live_booking=False, consented=True)
        == "converted"
    )  # type: ignore[arg-type]
    assert stop_reason(_lead(), "seek_care_checkin", has_live_booking=False, consented=False) == "no_consent"  # type: ignore[arg-type]
