"""The lead pipeline: which status may follow which. Pure; the service enforces it."""

from __future__ import annotations

STATUSES = (
    "new",
    "contacted",
    "consult_booked",
    "consult_done",
    "converted",
    "not_converted",
    "referred_out",
    "closed",
)
OPEN = ("new", "contacted", "consult_booked", "consult_done")
CLOSED_REASONS = ("no_response", "not_interested", "do_not_contact", "duplicate")
# Statuses after which no follow-up email goes out.
STOPS_FOLLOW_UPS = ("converted", "not_converted", "referred_out", "closed")

_FORWARD = {
    "new": ("contacted",),
    "contacted": ("consult_booked",),
    "consult_booked": ("consult_done",),
    "consult_done": ("converted", "not_converted"),
}


def allowed_next(status: str) -> tuple[str, ...]:
    """Forward one step, or out of the pipeline (referred to medical care, closed) from any open status."""
    if status not in OPEN:
        return ()
    return (*_FORWARD[status], "referred_out", "closed")


def can_move(current: str, target: str) -> bool:
    return target in allowed_next(current)
