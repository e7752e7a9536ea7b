"""The clinical contract of screening-policy.md, written out by hand so tests check the data against it."""

from __future__ import annotations

from typing import Any

SECTIONS = ("about_pain", "warning_signs", "impact", "background")

# linkId -> (type, repeats, options, required)
ITEMS: dict[str, tuple[str, bool, tuple[str, ...], bool]] = {
    "pain_area": ("choice", True, ("lower_back", "mid_back", "upper_back", "neck_shoulders"), True),
    "pain_now": ("integer", False, (), True),
    "onset": ("choice", False, ("sudden", "gradual"), False),
    "duration": (
        "choice",
        False,
        ("under_24h", "1_7_days", "1_6_weeks", "6_12_weeks", "over_12_weeks"),
        True,
    ),
    "recurring": ("boolean", False, (), False),
    "improving": ("choice", False, ("better", "same", "worse"), False),
    "rest_pain": ("boolean", False, (), False),
    "injury": ("choice", False, ("none", "minor", "major"), True),
    "spread": ("choice", False, ("none", "buttocks_hips", "one_leg", "both_legs"), False),
    "below_knee": ("boolean", False, (), False),
    "bladder_bowel": ("boolean", False, (), False),
    "saddle_numbness": ("boolean", False, (), False),
    "numbness_tingling": ("boolean", False, (), False),
    "leg_weakness": ("choice", False, ("none", "some", "worsening"), False),
    "balance": ("boolean", False, (), False),
    "fever": ("boolean", False, (), False),
    "weight_loss": ("boolean", False, (), False),
    "swelling": ("boolean", False, (), False),
    "chest_abdomen": ("boolean", False, (), False),
    "cancer_history": ("boolean", False, (), False),
    "immune_or_iv": ("boolean", False, (), False),
    "bone_risk": ("boolean", False, (), False),
    "pregnant": ("boolean", False, (), False),
    "labor_signs": ("boolean", False, (), False),
    "symptoms": (
        "choice",
        True,
        (
            "sharp_sudden",
            "tight_stiff",
            "twitching_knots",
            "pulling_cramping",
            "hard_to_bend_lift",
            "hard_to_stand_straight",
            "soreness_after",
        ),
        False,
    ),
    "daily_impact": ("integer", False, (), False),
    "age": ("integer", False, (), True),
    "activity": ("choice", False, ("very_active", "moderately_active", "mostly_sitting"), False),
    "stress": ("choice", False, ("low", "moderate", "high"), False),
    "conditions": (
        "choice",
        True,
        ("anxiety", "depression", "obesity", "herniated_disc", "spinal_stenosis", "arthritis"),
        False,
    ),
    "goals": ("text", False, (), False),
}

RANGES = {"pain_now": (0, 10), "daily_impact": (0, 10), "age": (16, 120)}
REQUIRED = tuple(link_id for link_id, (_, _, _, required) in ITEMS.items() if required)

# Severity orders from the policy, least severe first. `duration` is not one: a major injury is
# an emergency in its first week and urgent afterwards.
SEVERITY = {
    "leg_weakness": ("none", "some", "worsening"),
    "injury": ("none", "minor", "major"),
    "spread": ("none", "buttocks_hips", "one_leg", "both_legs"),
    "improving": ("better", "same", "worse"),
}

WARNING_BOOLEANS = (
    "recurring",
    "rest_pain",
    "below_knee",
    "bladder_bowel",
    "saddle_numbness",
    "numbness_tingling",
    "balance",
    "fever",
    "weight_loss",
    "swelling",
    "chest_abdomen",
    "cancer_history",
    "immune_or_iv",
    "bone_risk",
    "pregnant",
    "labor_signs",
)

BANDS = {"routine": (0, 24), "soon": (25, 49), "urgent": (50, 74), "emergency": (75, 100)}
TIER_RANK = {"emergency": 0, "urgent": 1, "soon": 2, "routine": 3}

# Rule code -> tier: every bullet of the policy's tiers is its own rule.
RULES = {
    "bladder_bowel": "emergency",
    "saddle_numbness": "emergency",
    "leg_weakness_worsening": "emergency",
    "chest_abdomen": "emergency",
    "both_legs_neuro": "emergency",
    "major_injury_recent": "emergency",
    "fever": "urgent",
    "weight_loss": "urgent",
    "swelling": "urgent",
    "cancer_history": "urgent",
    "rest_pain": "urgent",
    "numbness_tingling": "urgent",
    "balance": "urgent",
    "leg_weakness_some": "urgent",
    "minor_injury": "urgent",
    "major_injury_later": "urgent",
    "both_legs": "urgent",
    "immune_with_fever_or_rest_pain": "urgent",
    "pregnancy_labor_signs": "urgent",
    "not_improving": "soon",
    "recurring": "soon",
    "one_leg": "soon",
    "high_pain": "soon",
    "high_impact": "soon",
    "spine_condition": "soon",
    "immune_or_iv": "soon",
    "bone_risk": "soon",
    "age_65_plus": "soon",
}

CLINIC_PHONE = "+15615550100"
BOOKING_URL = "https://example.test/book"


def baseline(**changes: Any) -> dict[str, Any]:
    """Valid answers that fire no rule (routine), with `changes` applied."""
    answers: dict[str, Any] = {
        "pain_area": ["lower_back"],
        "pain_now": 3,
        "duration": "under_24h",
        "injury": "none",
        "age": 40,
    }
    answers.update(changes)
    return answers
