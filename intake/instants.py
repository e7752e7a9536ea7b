"""Moments that clients send (filters, bookings, cursors): with their UTC offset, in years a clinic can mean."""

from __future__ import annotations

import datetime as dt

from intake.problems import FieldProblem, InvalidFields

EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(3000, 1, 1, tzinfo=dt.UTC)
"""Outside these, arithmetic on a moment (a week's schedule, a horizon) could leave the years Python counts."""


def problem(value: dt.datetime, field: str) -> FieldProblem | None:
    """What is wrong with a moment a client sent, if anything."""
    if value.tzinfo is None or value.utcoffset() is None:
        # A time without an offset could be any of several instants.
        return FieldProblem(field, "Give the time with its UTC offset, e.g. 2026-03-09T14:00:00Z.")
    try:
        utc = value.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is before the first moment Python counts
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        return FieldProblem(field, f"The time must be between {EARLIEST.year} and {LATEST.year - 1}.")
    return None


def instant(value: dt.datetime, field: str) -> dt.datetime:
    """The moment in UTC, or 422 naming `field`."""
    if found := problem(value, field):
        raise InvalidFields([found])
    return value.astimezone(dt.UTC)


def optional_instants(**values: dt.datetime | None) -> dict[str, dt.datetime | None]:
    """Several optional moments at once, each in UTC; 422 naming every one at fault."""
    problems = [p for field, v in values.items() if v is not None and (p := problem(v, field))]
    if problems:
        raise InvalidFields(problems)
    return {field: v.astimezone(dt.UTC) if v is not None else None for field, v in values.items()}
