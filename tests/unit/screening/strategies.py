"""Hypothesis strategies for valid answers: every required item, show-when conditions respected."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.unit.screening.policy import ITEMS, RANGES

OPTIONAL = tuple(link_id for link_id, (_, _, _, required) in ITEMS.items() if not required)


def _value(link_id: str) -> st.SearchStrategy[Any]:
    kind, repeats, options, _ = ITEMS[link_id]
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        low, high = RANGES[link_id]
        return st.integers(low, high)
    if kind == "text":
        return st.text(max_size=50)
    if repeats:
        return st.lists(st.sampled_from(options), unique=True, max_size=len(options))
    return st.sampled_from(options)


@st.composite
def valid_answers(draw: st.DrawFn) -> dict[str, Any]:
    """Sparse by design: a few optional items answered, as most people do. Answering every item
    half the time would pile up warning signs until every score sits at its band's cap, where
    a drop in points cannot be seen."""
    answered = draw(st.sets(st.sampled_from(OPTIONAL), max_size=len(OPTIONAL)))
    answers: dict[str, Any] = {}
    for link_id, (_, _, options, required) in ITEMS.items():
        if link_id == "below_knee" and answers.get("spread") not in ("one_leg", "both_legs"):
            continue
        if link_id == "labor_signs" and answers.get("pregnant") is not True:
            continue
        if required:
            value = draw(_value(link_id))
            if link_id == "pain_area" and not value:
                value = [draw(st.sampled_from(options))]
            answers[link_id] = value
        elif link_id in answered:
            answers[link_id] = draw(_value(link_id))
    return answers
