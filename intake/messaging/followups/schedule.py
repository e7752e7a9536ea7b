"""The follow-up schedule, pure: the sequences of sequences.yaml, the sending window, offsets, and the stop rules.

Follow-ups are rows with `due_at` in the database, never ETA or countdown tasks: Redis forgets those on restart and
re-delivers long ones past its visibility timeout. `rows.py` writes and claims the rows; this module does no I/O.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from intake.db.models import Lead
from intake.vocabulary import LeadStatus

STOP_CONDITIONS = ("booked", "unsubscribed", "do_not_contact", "closed", "converted", "no_consent")
_OFFSET = re.compile(r"^(-?\d+)([dh])$")


class SequenceError(Exception):
    """sequences.yaml is malformed: start-up stops with this message."""


@dataclass(frozen=True, slots=True)
class Step:
    kind: str
    offset: str
    template: str


@dataclass(frozen=True, slots=True)
class Sequence:
    name: str
    anchor: str
    stop_on: tuple[str, ...]
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class Window:
    """The hours follow-ups may go out, in clinic time: [start, end)."""

    zone: ZoneInfo
    start: dt.time
    end: dt.time

    @classmethod
    def parse(cls, zone: str, spec: str) -> Window:
        try:
            start_text, end_text = spec.split("-")
            start = dt.time.fromisoformat(start_text.strip())
            end = dt.time.max if end_text.strip() == "24:00" else dt.time.fromisoformat(end_text.strip())
        except ValueError:
            raise ValueError(f"SENDING_WINDOW must look like 08:00-20:00, got {spec!r}") from None
        return cls(ZoneInfo(zone), start, end)

    def contains(self, moment: dt.datetime) -> bool:
        local = moment.astimezone(self.zone).time()
        return self.start <= local < self.end

    def place(self, moment: dt.datetime) -> dt.datetime:
        """`moment` if it is inside the window, else the window's next opening (the next morning)."""
        if self.contains(moment):
            return moment
        local = moment.astimezone(self.zone)
        day = local.date() if local.time() < self.start else local.date() + dt.timedelta(days=1)
        # Combining a date with a wall-clock time in the zone gets daylight-saving changes right.
        return dt.datetime.combine(day, self.start, tzinfo=self.zone).astimezone(dt.UTC)


def apply_offset(anchor: dt.datetime, offset: str, zone: ZoneInfo) -> dt.datetime:
    match = _OFFSET.match(offset)
    if match is None:
        raise SequenceError(f"offset {offset!r} is not like 3d or -24h")
    amount, unit = int(match.group(1)), match.group(2)
    if unit == "h":
        return anchor + dt.timedelta(hours=amount)
    local = anchor.astimezone(zone)
    moved = dt.datetime.combine(local.date() + dt.timedelta(days=amount), local.time(), tzinfo=zone)
    return moved.astimezone(dt.UTC)


@lru_cache(maxsize=1)
def sequences() -> dict[str, Sequence]:
    """The sequences of sequences.yaml, checked; a malformed file raises SequenceError naming the problem."""
    return parse_sequences(
        yaml.safe_load(resources.files("intake.messaging.followups").joinpath("sequences.yaml").read_text())
    )


def parse_sequences(raw: Any) -> dict[str, Sequence]:
    found: dict[str, Sequence] = {}
    kinds_seen: set[str] = set()
    for name, body in (raw or {}).get("sequences", {}).items():
        unknown = set(body.get("stop_on", [])) - set(STOP_CONDITIONS)
        if unknown:
            raise SequenceError(f"sequences.yaml: {name}: unknown stop condition(s) {sorted(unknown)}")
        if body.get("anchor") not in {"routed", "booking_start", "attended"}:
            raise SequenceError(f"sequences.yaml: {name}: anchor must be routed, booking_start or attended")
        steps = []
        for step in body.get("steps", []):
            if not _OFFSET.match(str(step.get("offset", ""))):
                raise SequenceError(f"sequences.yaml: {name}: offset {step.get('offset')!r} is not like 3d or -24h")
            if step["kind"] in kinds_seen:
                raise SequenceError(f"sequences.yaml: kind {step['kind']!r} appears twice")
            kinds_seen.add(step["kind"])
            steps.append(Step(step["kind"], str(step["offset"]), step["template"]))
        found[name] = Sequence(name, body["anchor"], tuple(body.get("stop_on", [])), tuple(steps))
    return found


def sequence_of_kind(kind: str) -> tuple[Sequence, Step] | None:
    for sequence in sequences().values():
        for step in sequence.steps:
            if step.kind == kind:
                return sequence, step
    return None


@lru_cache(maxsize=1)
def follow_up_kinds() -> frozenset[str]:
    return frozenset(step.kind for sequence in sequences().values() for step in sequence.steps)


def stop_reason(lead: Lead, kind: str, *, has_live_booking: bool, consented: bool) -> str | None:
    """Checked again when a follow-up is about to be sent: why it must not go, or None."""
    found = sequence_of_kind(kind)
    if found is None:
        return None
    sequence, _ = found
    checks = {
        "unsubscribed": lead.unsubscribed_at is not None,
        "do_not_contact": lead.closed_reason == "do_not_contact",
        "closed": lead.status == LeadStatus.CLOSED,
        "converted": lead.status == LeadStatus.CONVERTED,
        "booked": has_live_booking,
        "no_consent": not consented,
    }
    for condition in sequence.stop_on:
        if checks[condition]:
            return condition
    return None


__all__ = [
    "STOP_CONDITIONS",
    "Sequence",
    "SequenceError",
    "Step",
    "Window",
    "apply_offset",
    "follow_up_kinds",
    "parse_sequences",
    "sequence_of_kind",
    "sequences",
    "stop_reason",
]
