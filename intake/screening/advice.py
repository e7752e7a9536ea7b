"""Words for a result: reasons, advice and disclaimer of a rule set, loaded per language."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from intake.screening.datafiles import Problems, as_mapping, as_text
from intake.screening.model import Action, Advice, Assessment, Reason, Tier
from intake.screening.rules import Rule

# The kinds of button an advice block may carry; the href comes from here, never from a
# texts file, so a translation cannot send anyone to the wrong number.
ACTION_KINDS: tuple[str, ...] = ("call", "call_clinic", "book")
EMERGENCY_NUMBER = "911"


@dataclass(frozen=True, slots=True)
class AdviceText:
    title: str
    body: str
    actions: tuple[tuple[str, str], ...]  # (kind, label), in the order shown
    note: str | None = None  # rule advice only: added to a more urgent tier's advice


@dataclass(frozen=True, slots=True)
class RuleSetText:
    reasons: Mapping[str, str]
    advice: Mapping[str, AdviceText]
    disclaimer: str


def build_reasons(texts: RuleSetText, rules: Mapping[str, Rule], assessment: Assessment) -> list[Reason]:
    reasons: list[Reason] = []
    for code in assessment.rule_codes:
        if code not in rules:
            raise KeyError(f"rule {code!r} is not part of this rule set")
        reasons.append(Reason(code=code, tier=rules[code].tier, text=texts.reasons[code]))
    return reasons


def build_advice(
    texts: RuleSetText,
    rules: Mapping[str, Rule],
    assessment: Assessment,
    *,
    clinic_phone: str,
    booking_url: str,
) -> Advice:
    """The tier's advice, unless a fired rule of that same tier brings its own.

    A rule's own advice (pregnancy with labour signs) replaces the advice of its tier. When a
    more urgent rule fired too, that tier's advice leads, because its action comes first, and
    the rule's note is added so its message is not lost.
    """
    special = [rules[code] for code in assessment.rule_codes if code in rules and rules[code].advice]
    block = texts.advice[assessment.tier]
    if special and special[0].tier == assessment.tier:
        block = texts.advice[str(special[0].advice)]
        special = special[1:]
    notes: list[str] = []
    for rule in special:
        note = texts.advice[str(rule.advice)].note
        if note and note not in notes:
            notes.append(note)
    hrefs = {
        "call": f"tel:{EMERGENCY_NUMBER}",
        # tel: URIs may not hold spaces; phones dial "+1 561 ..." wrongly or not at all.
        "call_clinic": f"tel:{''.join(clinic_phone.split())}",
        "book": booking_url,
    }
    return Advice(
        title=block.title,
        body="\n\n".join([block.body, *notes]),
        actions=tuple(Action(kind=kind, label=label, href=hrefs[kind]) for kind, label in block.actions),
    )


def parse_rule_texts(
    raw: object, label: str, codes: Sequence[str], own_advice: Sequence[str], problems: Problems
) -> RuleSetText | None:
    """The texts of rulesets/<version>.<lang>.yaml, checked against the rule codes and the
    keys of the rules' own advice."""
    top = as_mapping(raw, label, problems, required=("reasons", "advice", "disclaimer"))
    if top is None:
        return None
    reasons: dict[str, str] = {}
    raw_reasons = as_mapping(top.get("reasons", {}), f"{label}: reasons", problems, optional=codes)
    if raw_reasons is not None:
        for code in codes:
            if code not in raw_reasons:
                problems.add(f"{label}: reasons", f"missing text for rule '{code}'")
                continue
            text = as_text(raw_reasons[code], f"{label}: reason '{code}'", problems)
            if text is not None:
                reasons[code] = text

    blocks = [tier.value for tier in Tier] + list(dict.fromkeys(own_advice))
    advice: dict[str, AdviceText] = {}
    raw_advice = as_mapping(top.get("advice", {}), f"{label}: advice", problems, optional=blocks)
    if raw_advice is not None:
        for key in blocks:
            if key not in raw_advice:
                problems.add(f"{label}: advice", f"missing advice '{key}'")
                continue
            block = _parse_block(
                raw_advice[key], f"{label}: advice '{key}'", with_note=key in own_advice, problems=problems
            )
            if block is not None:
                advice[key] = block
    disclaimer = as_text(top.get("disclaimer"), f"{label}: disclaimer", problems)
    if disclaimer is None:
        return None
    return RuleSetText(reasons=MappingProxyType(reasons), advice=MappingProxyType(advice), disclaimer=disclaimer)


def _parse_block(raw: object, where: str, *, with_note: bool, problems: Problems) -> AdviceText | None:
    required = ("title", "body", "actions", "note") if with_note else ("title", "body", "actions")
    entry = as_mapping(raw, where, problems, required=required)
    if entry is None:
        return None
    title = as_text(entry.get("title"), f"{where}: title", problems)
    body = as_text(entry.get("body"), f"{where}: body", problems)
    note = as_text(entry.get("note"), f"{where}: note", problems) if with_note else None
    actions: list[tuple[str, str]] = []
    raw_actions = as_mapping(entry.get("actions", {}), f"{where}: actions", problems, optional=ACTION_KINDS)
    if raw_actions is not None:
        if not raw_actions and "actions" in entry:
            problems.add(f"{where}: actions", f"needs at least one of {', '.join(ACTION_KINDS)}")
        for kind, raw_label in raw_actions.items():
            text = as_text(raw_label, f"{where}: action '{kind}'", problems)
            if text is not None:
                actions.append((kind, text))
    if title is None or body is None or (with_note and note is None):
        return None
    return AdviceText(title=title, body=body, actions=tuple(actions), note=note)


def check_same_actions(texts: Mapping[str, RuleSetText], labels: Mapping[str, str], problems: Problems) -> None:
    """Every language offers the same buttons in the same order; only the labels differ."""
    languages = list(texts)
    if len(languages) < 2:
        return
    first = languages[0]
    for lang in languages[1:]:
        for key, block in texts[first].advice.items():
            other = texts[lang].advice.get(key)
            if other is None:
                continue
            kinds = [kind for kind, _ in block.actions]
            other_kinds = [kind for kind, _ in other.actions]
            if kinds != other_kinds:
                problems.add(
                    f"{labels[lang]}: advice '{key}'",
                    f"actions {other_kinds} differ from {first} ({kinds})",
                )
