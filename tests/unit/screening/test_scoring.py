"""Every rule of the policy and its boundaries, scored through the shipped rule set."""

from __future__ import annotations

from typing import Any

import pytest

from intake.screening import Assessment, Catalog, Route, RuleSet, Tier
from tests.unit.screening.policy import BANDS, RULES, baseline

SEEK = Route.SEEK_CARE_NOW
BOOK = Route.BOOK_CONSULTATION


def scored(catalog: Catalog, rule_set: RuleSet, **changes: Any) -> Assessment:
    answers, errors = catalog.questionnaire.validate(baseline(**changes))
    assert errors == []
    return rule_set.assess(answers)


def test_baseline_fires_nothing_and_is_routine(catalog: Catalog, rule_set: RuleSet) -> None:
    result = scored(catalog, rule_set)
    assert result == Assessment(tier=Tier.ROUTINE, route=BOOK, score=3, rule_codes=())


# (answers changed from the baseline, the exact rules expected to fire, tier)
BULLETS: list[tuple[dict[str, Any], tuple[str, ...], Tier]] = [
    # emergency
    ({"bladder_bowel": True}, ("bladder_bowel",), Tier.EMERGENCY),
    ({"saddle_numbness": True}, ("saddle_numbness",), Tier.EMERGENCY),
    ({"leg_weakness": "worsening"}, ("leg_weakness_worsening",), Tier.EMERGENCY),
    ({"chest_abdomen": True}, ("chest_abdomen",), Tier.EMERGENCY),
    (
        {"spread": "both_legs", "numbness_tingling": True},
        ("both_legs_neuro", "numbness_tingling", "both_legs"),
        Tier.EMERGENCY,
    ),
    (
        {"spread": "both_legs", "leg_weakness": "some"},
        ("both_legs_neuro", "leg_weakness_some", "both_legs"),
        Tier.EMERGENCY,
    ),
    (
        {"spread": "both_legs", "leg_weakness": "worsening"},
        ("leg_weakness_worsening", "both_legs_neuro", "both_legs"),
        Tier.EMERGENCY,
    ),
    ({"injury": "major", "duration": "under_24h"}, ("major_injury_recent",), Tier.EMERGENCY),
    ({"injury": "major", "duration": "1_7_days"}, ("major_injury_recent",), Tier.EMERGENCY),
    # urgent
    ({"fever": True}, ("fever",), Tier.URGENT),
    ({"weight_loss": True}, ("weight_loss",), Tier.URGENT),
    ({"swelling": True}, ("swelling",), Tier.URGENT),
    ({"cancer_history": True}, ("cancer_history",), Tier.URGENT),
    ({"rest_pain": True}, ("rest_pain",), Tier.URGENT),
    ({"numbness_tingling": True}, ("numbness_tingling",), Tier.URGENT),
    ({"balance": True}, ("balance",), Tier.URGENT),
    ({"leg_weakness": "some"}, ("leg_weakness_some",), Tier.URGENT),
    ({"injury": "minor"}, ("minor_injury",), Tier.URGENT),
    (
        {"injury": "major", "duration": "1_6_weeks", "improving": "better"},
        ("major_injury_later",),
        Tier.URGENT,
    ),
    (
        {"injury": "major", "duration": "6_12_weeks", "improving": "better"},
        ("major_injury_later",),
        Tier.URGENT,
    ),
    (
        {"injury": "major", "duration": "over_12_weeks", "improving": "better"},
        ("major_injury_later",),
        Tier.URGENT,
    ),
    ({"spread": "both_legs"}, ("both_legs",), Tier.URGENT),
    ({"spread": "both_legs", "leg_weakness": "none"}, ("both_legs",), Tier.URGENT),
    ({"spread": "both_legs", "below_knee": True}, ("both_legs",), Tier.URGENT),
    ({"immune_or_iv": True, "fever": True}, ("fever", "immune_with_fever_or_rest_pain"), Tier.URGENT),
    ({"immune_or_iv": True, "rest_pain": True}, ("rest_pain", "immune_with_fever_or_rest_pain"), Tier.URGENT),
    ({"pregnant": True, "labor_signs": True}, ("pregnancy_labor_signs",), Tier.URGENT),
    # soon
    ({"duration": "1_6_weeks"}, ("not_improving",), Tier.SOON),
    ({"duration": "6_12_weeks", "improving": "same"}, ("not_improving",), Tier.SOON),
    ({"duration": "over_12_weeks", "improving": "worse"}, ("not_improving",), Tier.SOON),
    ({"recurring": True}, ("recurring",), Tier.SOON),
    ({"spread": "one_leg"}, ("one_leg",), Tier.SOON),
    ({"spread": "one_leg", "below_knee": True}, ("one_leg",), Tier.SOON),
    ({"pain_now": 7}, ("high_pain",), Tier.SOON),
    ({"daily_impact": 7}, ("high_impact",), Tier.SOON),
    ({"conditions": ["herniated_disc"]}, ("spine_condition",), Tier.SOON),
    ({"conditions": ["spinal_stenosis"]}, ("spine_condition",), Tier.SOON),
    ({"conditions": ["arthritis", "anxiety"]}, ("spine_condition",), Tier.SOON),
    ({"immune_or_iv": True}, ("immune_or_iv",), Tier.SOON),
    ({"bone_risk": True}, ("bone_risk",), Tier.SOON),
    ({"age": 65}, ("age_65_plus",), Tier.SOON),
    # routine: answered, but not a sign of anything in the policy
    ({"spread": "buttocks_hips"}, (), Tier.ROUTINE),
    ({"pregnant": True}, (), Tier.ROUTINE),
    ({"pregnant": True, "labor_signs": False}, (), Tier.ROUTINE),
    ({"conditions": ["anxiety", "depression", "obesity"]}, (), Tier.ROUTINE),
    ({"duration": "1_6_weeks", "improving": "better"}, (), Tier.ROUTINE),
    ({"duration": "1_7_days", "improving": "worse"}, (), Tier.ROUTINE),
    (
        {
            "onset": "sudden",
            "symptoms": ["sharp_sudden", "tight_stiff"],
            "stress": "high",
            "activity": "mostly_sitting",
            "goals": "Play golf again",
            "leg_weakness": "none",
            "spread": "none",
        },
        (),
        Tier.ROUTINE,
    ),
]


@pytest.mark.parametrize(("changes", "codes", "tier"), BULLETS)
def test_policy_bullet(
    catalog: Catalog, rule_set: RuleSet, changes: dict[str, Any], codes: tuple[str, ...], tier: Tier
) -> None:
    result = scored(catalog, rule_set, **changes)
    assert result.rule_codes == codes
    assert result.tier == tier
    assert result.route == (SEEK if tier in (Tier.EMERGENCY, Tier.URGENT) else BOOK)
    low, high = BANDS[tier]
    assert low <= result.score <= high


def test_every_rule_of_the_policy_is_tested_and_shipped(rule_set: RuleSet) -> None:
    assert {rule.code: rule.tier.value for rule in rule_set.rules} == RULES
    fired = {code for _, codes, _ in BULLETS for code in codes}
    assert fired == set(RULES)


def test_rule_codes_are_ordered_most_severe_tier_first(catalog: Catalog, rule_set: RuleSet) -> None:
    result = scored(catalog, rule_set, recurring=True, fever=True, bladder_bowel=True, age=70)
    assert result.rule_codes == ("bladder_bowel", "fever", "recurring", "age_65_plus")
    assert result.tier == Tier.EMERGENCY


@pytest.mark.parametrize(("item", "below", "at"), [("pain_now", 6, 7), ("daily_impact", 6, 7), ("age", 64, 65)])
def test_soon_thresholds(catalog: Catalog, rule_set: RuleSet, item: str, below: int, at: int) -> None:
    assert scored(catalog, rule_set, **{item: below}).tier == Tier.ROUTINE
    assert scored(catalog, rule_set, **{item: at}).tier == Tier.SOON


def test_oldest_age_is_accepted_and_scored(catalog: Catalog, rule_set: RuleSet) -> None:
    assert scored(catalog, rule_set, age=120).rule_codes == ("age_65_plus",)
    assert scored(catalog, rule_set, age=16).rule_codes == ()


def test_pain_at_the_top_of_the_scale(catalog: Catalog, rule_set: RuleSet) -> None:
    result = scored(catalog, rule_set, pain_now=10, daily_impact=10)
    assert result.rule_codes == ("high_pain", "high_impact")
    assert result.tier == Tier.SOON


@pytest.mark.parametrize(
    ("duration", "tier", "code"),
    [
        ("under_24h", Tier.EMERGENCY, "major_injury_recent"),
        ("1_7_days", Tier.EMERGENCY, "major_injury_recent"),
        ("1_6_weeks", Tier.URGENT, "major_injury_later"),
        ("over_12_weeks", Tier.URGENT, "major_injury_later"),
    ],
)
def test_major_injury_duration_edge(catalog: Catalog, rule_set: RuleSet, duration: str, tier: Tier, code: str) -> None:
    result = scored(catalog, rule_set, injury="major", duration=duration, improving="better")
    assert (result.tier, result.rule_codes) == (tier, (code,))


def test_major_injury_without_a_duration_is_still_urgent(rule_set: RuleSet) -> None:
    # duration is required, so only a caller skipping validation gets here: fail towards care.
    answers = baseline(injury="major")
    del answers["duration"]
    assert rule_set.assess(answers).tier == Tier.URGENT


@pytest.mark.parametrize(
    ("duration", "improving", "fires"),
    [
        ("under_24h", None, False),
        ("1_7_days", None, False),
        ("1_7_days", "worse", False),
        ("1_6_weeks", None, True),
        ("1_6_weeks", "better", False),
        ("1_6_weeks", "same", True),
        ("1_6_weeks", "worse", True),
        ("6_12_weeks", "better", False),
        ("over_12_weeks", None, True),
    ],
)
def test_not_improving_after_a_week(
    catalog: Catalog, rule_set: RuleSet, duration: str, improving: str | None, fires: bool
) -> None:
    changes: dict[str, Any] = {"duration": duration}
    if improving is not None:
        changes["improving"] = improving
    result = scored(catalog, rule_set, **changes)
    assert ("not_improving" in result.rule_codes) is fires
    assert result.tier == (Tier.SOON if fires else Tier.ROUTINE)


def test_improving_left_out_counts_as_not_better(catalog: Catalog, rule_set: RuleSet) -> None:
    assert scored(catalog, rule_set, duration="1_6_weeks").tier == Tier.SOON
    assert scored(catalog, rule_set, duration="1_6_weeks", improving=None).tier == Tier.SOON
    assert scored(catalog, rule_set, duration="1_6_weeks", improving="better").tier == Tier.ROUTINE


def test_left_out_boolean_counts_as_no(catalog: Catalog, rule_set: RuleSet) -> None:
    assert scored(catalog, rule_set, fever=False) == scored(catalog, rule_set)
    assert scored(catalog, rule_set, immune_or_iv=True, fever=False).rule_codes == ("immune_or_iv",)


def test_both_legs_needs_numbness_or_weakness_for_emergency(catalog: Catalog, rule_set: RuleSet) -> None:
    assert scored(catalog, rule_set, spread="both_legs").tier == Tier.URGENT
    assert scored(catalog, rule_set, spread="both_legs", numbness_tingling=False).tier == Tier.URGENT
    assert scored(catalog, rule_set, spread="both_legs", numbness_tingling=True).tier == Tier.EMERGENCY
    assert scored(catalog, rule_set, spread="one_leg", numbness_tingling=True).tier == Tier.URGENT


def test_immune_or_iv_alone_is_soon_with_fever_urgent_with_both_reasons(catalog: Catalog, rule_set: RuleSet) -> None:
    alone = scored(catalog, rule_set, immune_or_iv=True)
    assert (alone.tier, alone.route, alone.rule_codes) == (Tier.SOON, BOOK, ("immune_or_iv",))
    with_fever = scored(catalog, rule_set, immune_or_iv=True, fever=True)
    assert (with_fever.tier, with_fever.route) == (Tier.URGENT, SEEK)
    reasons = rule_set.reasons(with_fever, "en")
    assert [r.code for r in reasons] == ["fever", "immune_with_fever_or_rest_pain"]
    assert all(r.tier == Tier.URGENT and r.text for r in reasons)


def test_pregnant_alone_is_routine_with_labor_signs_urgent(catalog: Catalog, rule_set: RuleSet) -> None:
    assert scored(catalog, rule_set, pregnant=True).tier == Tier.ROUTINE
    result = scored(catalog, rule_set, pregnant=True, labor_signs=True)
    assert (result.tier, result.route) == (Tier.URGENT, SEEK)


def test_score_orders_leads_within_a_tier(catalog: Catalog, rule_set: RuleSet) -> None:
    mild = scored(catalog, rule_set, fever=True, pain_now=2)
    worse = scored(catalog, rule_set, fever=True, pain_now=8, rest_pain=True)
    assert mild.tier == worse.tier == Tier.URGENT
    assert mild.score < worse.score


def test_score_is_capped_at_100(catalog: Catalog, rule_set: RuleSet) -> None:
    everything = {
        "bladder_bowel": True,
        "saddle_numbness": True,
        "chest_abdomen": True,
        "leg_weakness": "worsening",
        "spread": "both_legs",
        "numbness_tingling": True,
        "injury": "major",
        "fever": True,
        "pain_now": 10,
        "daily_impact": 10,
    }
    assert scored(catalog, rule_set, **everything).score == 100


def test_routine_score_counts_pain_and_impact(catalog: Catalog, rule_set: RuleSet) -> None:
    assert scored(catalog, rule_set, pain_now=0).score == 0
    assert scored(catalog, rule_set, pain_now=6, daily_impact=6).score == 12


def test_assessment_carries_no_language(catalog: Catalog, rule_set: RuleSet) -> None:
    result = scored(catalog, rule_set, fever=True)
    assert {type(code) for code in result.rule_codes} == {str}
    assert isinstance(result.score, int)


def test_tier_rank_sorts_most_urgent_first() -> None:
    assert [t.rank for t in (Tier.EMERGENCY, Tier.URGENT, Tier.SOON, Tier.ROUTINE)] == [0, 1, 2, 3]
    assert sorted(Tier, key=lambda t: t.rank)[0] is Tier.EMERGENCY
