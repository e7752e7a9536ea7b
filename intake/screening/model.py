"""Value types of the screen shared by every module: tiers, routes, errors and results."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Tier(StrEnum):
    """How soon the person needs care; the clinical contract fixes these four values."""

    EMERGENCY = "emergency"
    URGENT = "urgent"
    SOON = "soon"
    ROUTINE = "routine"

    @property
    def rank(self) -> int:
        """0 for the most urgent tier (emergency) up to 3 for routine: sort ascending for a queue."""
        return _TIER_RANKS[self]


_TIER_RANKS: dict[Tier, int] = {Tier.EMERGENCY: 0, Tier.URGENT: 1, Tier.SOON: 2, Tier.ROUTINE: 3}


class Route(StrEnum):
    """What the person is told to do at once."""

    SEEK_CARE_NOW = "seek_care_now"
    BOOK_CONSULTATION = "book_consultation"


class RuleSetError(Exception):
    """A data file of the screen is missing or wrong; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class Assessment:
    """The language-free result of scoring: rule codes are ordered most severe tier first."""

    tier: Tier
    route: Route
    score: int
    rule_codes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    tier: Tier
    text: str


@dataclass(frozen=True, slots=True)
class Action:
    """A button under the advice: kind is "call" (911), "call_clinic" or "book"."""

    kind: str
    label: str
    href: str


@dataclass(frozen=True, slots=True)
class Advice:
    title: str
    body: str
    actions: tuple[Action, ...]
