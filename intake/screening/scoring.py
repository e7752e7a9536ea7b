"""Scoring: validated answers in, tier, route, concern score and fired rule codes out (pure).

Tier: the most urgent tier any fired rule reaches; no rule fired means routine.

Concern score (0..100) orders leads within a tier. Each tier owns a band of the scale,

    routine 0-24, soon 25-49, urgent 50-74, emergency 75-100,

and score = band base + min(band width, points), where points are the weights of the fired
rules plus, for each integer item listed under ``score.per_point`` in the rules file (pain_now,
daily_impact), its value above the item's minimum times a non-negative weight. Every part is
non-negative and grows with the answers, and every band starts above the end of the band below
it, so a more severe answer never lowers the score: within a tier the points only grow, and a
rise in tier jumps to a higher band. Where one rule gives way to a more severe one (leg_weakness
some -> worsening, ...), the rules file gives the severe one at least the same weight.

Scoring reads no clock, no file and no randomness: the same answers and rule set always give
the same assessment.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from intake.screening.model import Assessment, Route, Tier
from intake.screening.rules import PerPoint, Rule

BANDS: Mapping[Tier, tuple[int, int]] = MappingProxyType(
    {
        Tier.ROUTINE: (0, 24),
        Tier.SOON: (25, 49),
        Tier.URGENT: (50, 74),
        Tier.EMERGENCY: (75, 100),
    }
)

ROUTES: Mapping[Tier, Route] = MappingProxyType(
    {
        Tier.EMERGENCY: Route.SEEK_CARE_NOW,
        Tier.URGENT: Route.SEEK_CARE_NOW,
        Tier.SOON: Route.BOOK_CONSULTATION,
        Tier.ROUTINE: Route.BOOK_CONSULTATION,
    }
)


def assess(rules: tuple[Rule, ...], per_point: tuple[PerPoint, ...], answers: Mapping[str, Any]) -> Assessment:
    fired = [rule for rule in rules if rule.when.holds(answers)]
    tier = min((rule.tier for rule in fired), key=lambda t: t.rank, default=Tier.ROUTINE)
    points = sum(rule.weight for rule in fired) + sum(part.score(answers) for part in per_point)
    low, high = BANDS[tier]
    # sorted() is stable: within a tier the rules keep the order of the rules file.
    ordered = sorted(fired, key=lambda rule: rule.tier.rank)
    return Assessment(
        tier=tier,
        route=ROUTES[tier],
        score=low + min(high - low, points),
        rule_codes=tuple(rule.code for rule in ordered),
    )
