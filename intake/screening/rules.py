"""Rules as data: the condition language, and loading and checking a rule-set file.

A condition is either a test of one item, ``{item: <linkId>, <operator>: <operand>}``, or a
combination, ``{all: [<condition>, ...]}`` / ``{any: [<condition>, ...]}``. Operators:

- ``is``: the answer equals the operand (a boolean, a code of a single choice, or a number);
- ``in`` / ``not_in``: a single-choice answer is / is not one of the listed codes;
- ``gte``: an integer answer is at least the operand;
- ``contains_any``: a multi-choice answer holds at least one of the listed codes.

Left-out answers follow the policy: a left-out boolean counts as "no" (false). Any other
left-out answer satisfies no ``is``, ``in``, ``gte`` or ``contains_any`` and satisfies every
``not_in``; so ``{item: improving, not_in: [better]}`` holds when ``improving`` is left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from intake.screening.datafiles import IDENTIFIER, Problems, as_int, as_mapping
from intake.screening.items import Item
from intake.screening.model import Tier

Operator = Literal["is", "in", "not_in", "gte", "contains_any"]
OPERATORS: tuple[Operator, ...] = ("is", "in", "not_in", "gte", "contains_any")
_TIER_VALUES = frozenset(tier.value for tier in Tier)


class Condition(Protocol):
    def holds(self, answers: Mapping[str, Any]) -> bool: ...


@dataclass(frozen=True, slots=True)
class AllOf:
    parts: tuple[Condition, ...]

    def holds(self, answers: Mapping[str, Any]) -> bool:
        return all(part.holds(answers) for part in self.parts)


@dataclass(frozen=True, slots=True)
class AnyOf:
    parts: tuple[Condition, ...]

    def holds(self, answers: Mapping[str, Any]) -> bool:
        return any(part.holds(answers) for part in self.parts)


@dataclass(frozen=True, slots=True)
class ItemTest:
    item: Item
    operator: Operator
    operand: bool | int | str | tuple[str, ...]

    def holds(self, answers: Mapping[str, Any]) -> bool:
        value = answers.get(self.item.link_id)
        if value is None and self.item.type == "boolean":
            value = False
        if self.operator == "not_in":
            return value is None or value not in cast(tuple[str, ...], self.operand)
        if value is None:
            return False
        if self.operator == "is":
            # Strict on type: in Python True == 1.
            return type(value) is type(self.operand) and bool(value == self.operand)
        if self.operator == "in":
            return value in cast(tuple[str, ...], self.operand)
        if self.operator == "gte":
            return isinstance(value, int) and value >= cast(int, self.operand)
        # A text is not a list of codes: "lower_back" must not contain "back".
        return isinstance(value, list | tuple) and any(code in value for code in cast(tuple[str, ...], self.operand))


@dataclass(frozen=True, slots=True)
class Rule:
    code: str
    tier: Tier
    weight: int
    when: Condition
    advice: str | None = None  # its own advice block, which speaks for it (see advice.py)


@dataclass(frozen=True, slots=True)
class PerPoint:
    """Concern points for an integer answer: `points` per step above the item's minimum."""

    item: Item
    points: int

    def score(self, answers: Mapping[str, Any]) -> int:
        value = answers.get(self.item.link_id)
        if not isinstance(value, int) or isinstance(value, bool):
            return 0
        return max(0, value - (self.item.minimum or 0)) * self.points


@dataclass(frozen=True, slots=True)
class RuleFile:
    version: str
    rules: tuple[Rule, ...]
    per_point: tuple[PerPoint, ...]
    # Every code and own-advice key the file declares, broken rules included, so the texts are
    # checked against what the author meant and a broken rule is reported once, not three times.
    declared_codes: tuple[str, ...]
    declared_advice: tuple[str, ...]


def parse_rule_file(
    raw: object, label: str, version: str, items: Mapping[str, Item], problems: Problems
) -> RuleFile | None:
    """The rules of rulesets/<version>.yaml, checked against the questionnaire's items."""
    top = as_mapping(raw, label, problems, required=("version", "rules", "score"))
    if top is None:
        return None
    if "version" in top and top["version"] != version:
        problems.add(label, f"version {top['version']!r} does not match the file name '{version}'")
    raw_rules = top.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        problems.add(f"{label}: rules", "must be a non-empty list")
        return None
    rules: list[Rule] = []
    codes: set[str] = set()
    declared_codes: list[str] = []
    declared_advice: list[str] = []
    for index, raw_rule in enumerate(raw_rules):
        code = raw_rule.get("code") if isinstance(raw_rule, Mapping) else None
        advice = raw_rule.get("advice") if isinstance(raw_rule, Mapping) else None
        where = f"{label}: rule {index + 1}"
        if isinstance(code, str) and IDENTIFIER.match(code):
            where = f"{label}: rule '{code}'"
            declared_codes.append(code)
        if isinstance(advice, str) and advice not in _TIER_VALUES:
            declared_advice.append(advice)
        rule = _parse_rule(raw_rule, where, items, problems)
        if rule is None:
            continue
        if rule.code in codes:
            problems.add(where, f"duplicate code '{rule.code}'")
            continue
        codes.add(rule.code)
        rules.append(rule)
    per_point = _parse_score(top.get("score"), f"{label}: score", items, problems)
    return RuleFile(
        version=version,
        rules=tuple(rules),
        per_point=per_point,
        declared_codes=tuple(dict.fromkeys(declared_codes)),
        declared_advice=tuple(dict.fromkeys(declared_advice)),
    )


def _parse_rule(raw: object, where: str, items: Mapping[str, Item], problems: Problems) -> Rule | None:
    entry = as_mapping(raw, where, problems, required=("code", "tier", "weight", "when"), optional=("advice",))
    if entry is None:
        return None
    code = entry.get("code")
    if not isinstance(code, str) or not IDENTIFIER.match(code):
        problems.add(where, f"code {code!r} must be an id of lower-case letters, digits and _")
        return None
    tier_value = entry.get("tier")
    tier = Tier(tier_value) if isinstance(tier_value, str) and tier_value in _TIER_VALUES else None
    if tier is None:
        problems.add(where, f"unknown tier {tier_value!r}; use one of {', '.join(Tier)}")
    # Negative weights could lower the score when one more sign is present.
    weight = as_int(entry.get("weight"), f"{where}: weight", problems, minimum=0) if "weight" in entry else None
    condition = parse_condition(entry.get("when"), f"{where}: when", items, problems) if "when" in entry else None
    raw_advice = entry.get("advice")
    advice = raw_advice if isinstance(raw_advice, str) and IDENTIFIER.match(raw_advice) else None
    if raw_advice is not None and advice is None:
        problems.add(where, f"advice {raw_advice!r} must be an id of lower-case letters, digits and _")
    if advice in _TIER_VALUES:
        problems.add(where, f"advice '{advice}' is a tier's advice; give the rule's own advice another name")
        advice = None
    if tier is None or weight is None or condition is None:
        return None
    return Rule(code=code, tier=tier, weight=weight, when=condition, advice=advice)


def parse_condition(raw: object, where: str, items: Mapping[str, Item], problems: Problems) -> Condition | None:
    if not isinstance(raw, Mapping):
        problems.add(where, "a condition must be a mapping")
        return None
    keys = set(raw)
    if keys & {"all", "any"}:
        if len(keys) != 1:
            problems.add(where, f"'all'/'any' must stand alone, found keys {sorted(map(str, keys))}")
            return None
        combinator = "all" if "all" in keys else "any"
        raw_parts = raw[combinator]
        if not isinstance(raw_parts, list) or not raw_parts:
            problems.add(where, f"'{combinator}' needs a non-empty list of conditions")
            return None
        parts = [
            parse_condition(part, f"{where}: {combinator}[{i + 1}]", items, problems)
            for i, part in enumerate(raw_parts)
        ]
        if any(part is None for part in parts):
            return None
        checked = tuple(cast(list[Condition], parts))
        return AllOf(checked) if combinator == "all" else AnyOf(checked)
    if "item" not in keys:
        problems.add(where, f"a condition needs 'item', 'all' or 'any', found keys {sorted(map(str, keys))}")
        return None
    operators = keys - {"item"}
    unknown = sorted(str(key) for key in operators if key not in OPERATORS)
    if unknown:
        problems.add(
            where,
            f"unknown operator {', '.join(repr(k) for k in unknown)}; use one of {', '.join(OPERATORS)}",
        )
        return None
    if len(operators) != 1:
        problems.add(where, f"a test needs exactly one operator ({', '.join(OPERATORS)})")
        return None
    link_id = raw["item"]
    item = items.get(link_id) if isinstance(link_id, str) else None
    if item is None:
        problems.add(where, f"unknown item {_quoted(link_id)}")
        return None
    operator = cast(Operator, operators.pop())
    operand = _check_operand(item, operator, raw[operator], where, problems)
    if operand is None:
        return None
    return ItemTest(item=item, operator=operator, operand=operand)


def _check_operand(
    item: Item, operator: Operator, raw: object, where: str, problems: Problems
) -> bool | int | str | tuple[str, ...] | None:
    name = f"'{item.link_id}'"
    if item.type == "text":
        problems.add(where, f"{name} is free text and is never scored")
        return None
    if operator == "is":
        if item.type == "boolean":
            if isinstance(raw, bool):
                return raw
            problems.add(where, f"{name} is a boolean: 'is' needs true or false, not {raw!r}")
            return None
        if item.type == "integer":
            return _number_in_range(item, raw, where, problems)
        if item.repeats:
            problems.add(where, f"{name} is a multi-choice item: use 'contains_any'")
            return None
        if not isinstance(raw, str) or raw not in item.options:
            problems.add(where, f"{_quoted(raw)} is not an option of {name}")
            return None
        return raw
    if operator == "gte":
        if item.type != "integer":
            problems.add(where, f"'gte' needs an integer item; {name} is a {item.type} item")
            return None
        return _number_in_range(item, raw, where, problems)
    wants_repeats = operator == "contains_any"
    if item.type != "choice" or item.repeats != wants_repeats:
        kind = "a multi-choice" if wants_repeats else "a single-choice"
        problems.add(where, f"'{operator}' needs {kind} item; {name} is not one")
        return None
    if not isinstance(raw, list) or not raw:
        problems.add(where, f"'{operator}' needs a non-empty list of options of {name}")
        return None
    codes: list[str] = []
    for code in raw:
        if not isinstance(code, str) or code not in item.options:
            problems.add(where, f"{_quoted(code)} is not an option of {name}")
            return None
        if code in codes:
            problems.add(where, f"option '{code}' is listed twice")
            return None
        codes.append(code)
    return tuple(codes)


def _number_in_range(item: Item, raw: object, where: str, problems: Problems) -> int | None:
    if isinstance(raw, bool) or not isinstance(raw, int):
        problems.add(where, f"'{item.link_id}' is an integer item: needs a whole number, not {raw!r}")
        return None
    low, high = item.minimum, item.maximum
    if (low is not None and raw < low) or (high is not None and raw > high):
        problems.add(where, f"{raw} is outside the range of '{item.link_id}' ({low} to {high})")
        return None
    return raw


def _parse_score(raw: object, where: str, items: Mapping[str, Item], problems: Problems) -> tuple[PerPoint, ...]:
    score = as_mapping(raw, where, problems, optional=("per_point",))
    if score is None:
        return ()
    table = as_mapping(score.get("per_point", {}), f"{where}: per_point", problems, optional=list(items))
    if table is None:
        return ()
    result: list[PerPoint] = []
    for link_id, raw_points in table.items():
        item = items[link_id]
        if item.type != "integer":
            problems.add(f"{where}: per_point", f"'{link_id}' is not an integer item")
            continue
        # Non-negative so that a higher answer never lowers the score.
        points = as_int(raw_points, f"{where}: per_point: {link_id}", problems, minimum=0)
        if points is not None:
            result.append(PerPoint(item, points))
    return tuple(result)


def _quoted(value: object) -> str:
    return f"'{value}'" if isinstance(value, str) else repr(value)
