"""The questionnaire: checks submitted answers and renders itself as FHIR, in either language."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from intake.problems import FieldProblem
from intake.screening import fhir
from intake.screening.items import Item, QuestionnaireText, Section
from intake.vocabulary import LANGUAGES, Language

_LEFT_OUT = object()


class Questionnaire:
    """The screen's questions in both languages; checks answers and renders FHIR."""

    def __init__(self, sections: tuple[Section, ...], texts: Mapping[str, QuestionnaireText]) -> None:
        self.sections = sections
        self.items: Mapping[str, Item] = MappingProxyType(
            {item.link_id: item for section in sections for item in section.items}
        )
        self._texts = MappingProxyType(dict(texts))

    def texts(self, lang: Language) -> QuestionnaireText:
        if lang not in self._texts:
            raise ValueError(f"unsupported language {lang!r}; use one of {', '.join(LANGUAGES)}")
        return self._texts[lang]

    # -- validation ---------------------------------------------------------------------------

    def validate(self, answers: object) -> tuple[dict[str, Any], list[FieldProblem]]:
        """The answers kept in questionnaire order, and every problem found in them.

        A null answer counts as left out. An item answered while its show-when condition is
        false is an error: the person never saw that question, so the answer cannot be theirs.
        """
        if not isinstance(answers, Mapping):
            return {}, [FieldProblem("answers", "Answers must be an object with one entry per question.")]
        errors: list[FieldProblem] = []
        for key in answers:
            if not isinstance(key, str):
                errors.append(FieldProblem("answers", "Every question id must be a string."))
            elif key not in self.items:
                errors.append(FieldProblem(f"answers.{key}", f"Unknown question '{_shorten(key)}'."))

        checked: dict[str, Any] = {}
        failed: set[str] = set()
        for link_id, item in self.items.items():
            value = answers.get(link_id)
            if value is None:
                continue
            problem = _check_value(item, value)
            if problem is None:
                checked[link_id] = list(value) if item.repeats else value
            else:
                failed.add(link_id)
                errors.append(FieldProblem(f"answers.{link_id}", problem))

        for link_id, item in self.items.items():
            if link_id in failed:
                continue
            # A wrong answer to the controlling question is reported already; judging this
            # item against it would only add noise.
            if any(condition.question in failed for condition in item.enable_when):
                continue
            enabled = self.is_enabled(item, checked)
            if link_id in checked and not enabled:
                del checked[link_id]
                errors.append(FieldProblem(f"answers.{link_id}", self._disabled_message(item)))
            elif link_id not in checked and enabled and item.required:
                errors.append(FieldProblem(f"answers.{link_id}", _missing_message(item)))
        return checked, errors

    def is_enabled(self, item: Item, answers: Mapping[str, Any]) -> bool:
        """FHIR enableWhen: a question left out matches no condition."""
        if not item.enable_when:
            return True
        matches = (
            _same_answer(answers.get(condition.question, _LEFT_OUT), condition.answer) for condition in item.enable_when
        )
        return any(matches) if item.enable_behavior == "any" else all(matches)

    def _disabled_message(self, item: Item) -> str:
        conditions = [f"'{c.question}' is {_shown(c.answer)}" for c in item.enable_when]
        joiner = " or " if item.enable_behavior == "any" else " and "
        return f"'{item.link_id}' is only asked when {joiner.join(conditions)}; leave it out."

    # -- FHIR ---------------------------------------------------------------------------------

    def as_fhir(self, lang: Language, rule_set_version: str) -> dict[str, Any]:
        """A FHIR R4 Questionnaire resource in one language, stamped with the rule-set version."""
        return fhir.render(self.sections, self.texts(lang), lang, rule_set_version)


# -- checking one answer ----------------------------------------------------------------------


def _check_value(item: Item, value: object) -> str | None:
    """What is wrong with a given (non-null) answer to `item`, in English, or None.

    Every submission passes here item by item: the messages are only made for a wrong answer.
    """
    if item.type == "boolean":
        return None if isinstance(value, bool) else f"'{item.link_id}' must be true or false."
    if item.type == "integer":
        return _check_integer(item, value)
    if item.type == "text":
        if not isinstance(value, str):
            return f"'{item.link_id}' must be text."
        if item.max_length is not None and len(value) > item.max_length:
            return f"'{item.link_id}' must be at most {item.max_length} characters long (it has {len(value)})."
        return None
    if not item.repeats:
        if isinstance(value, str) and value in item.options:
            return None
        if not isinstance(value, str):
            return f"'{item.link_id}' must be one of these codes: {_choices(item)}."
        return f"'{item.link_id}' has no option {_shown(value)}; choose one of: {_choices(item)}."
    if (
        isinstance(value, list)
        and all(isinstance(code, str) and code in item.options for code in value)
        and len(set(value)) == len(value)
        and (value or not item.required)
    ):
        return None
    return _wrong_codes(item, value)


def _wrong_codes(item: Item, value: object) -> str:
    """What is wrong with an answer to a multiple-choice item that is known to be wrong."""
    name, choices = f"'{item.link_id}'", _choices(item)
    if not isinstance(value, list):
        return f"{name} must be a list of codes, chosen from: {choices}."
    if not all(isinstance(code, str) for code in value):
        return f"{name} must be a list of codes (text), chosen from: {choices}."
    unknown = list(dict.fromkeys(code for code in value if code not in item.options))
    if unknown:
        # A few codes are enough to fix the request; echoing thousands is not.
        shown = ", ".join(_shown(code) for code in unknown[:3]) + (", ..." if len(unknown) > 3 else "")
        return f"{name} has no option {shown}; choose from: {choices}."
    repeated = [code for code, count in Counter(value).items() if count > 1]
    if repeated:
        return f"{name} lists {', '.join(_shown(code) for code in repeated)} more than once."
    return f"{name} is required: choose at least one of: {choices}."


def _choices(item: Item) -> str:
    return ", ".join(item.options)


def _check_integer(item: Item, value: object) -> str | None:
    name = f"'{item.link_id}'"
    # JSON true would pass as the integer 1 in Python; a yes/no is never a number here.
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name} must be a whole number from {item.minimum} to {item.maximum}."
    if item.minimum is not None and value < item.minimum:
        if item.below_min_message:
            return f"{name} is under {item.minimum}. {item.below_min_message}"
        return f"{name} must be at least {item.minimum} (from {item.minimum} to {item.maximum})."
    if item.maximum is not None and value > item.maximum:
        return f"{name} must be at most {item.maximum} (from {item.minimum} to {item.maximum})."
    return None


def _missing_message(item: Item) -> str:
    if item.type == "choice" and item.repeats:
        return f"'{item.link_id}' is required: choose at least one of: {_choices(item)}."
    if item.type == "choice":
        return f"'{item.link_id}' is required: choose one of: {_choices(item)}."
    if item.type == "integer":
        return f"'{item.link_id}' is required: a whole number from {item.minimum} to {item.maximum}."
    return f"'{item.link_id}' is required."


def _same_answer(given: object, expected: str | bool) -> bool:
    # Strict on type: in Python True == 1, and a code never equals a yes/no.
    return type(given) is type(expected) and given == expected


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"'{_shorten(str(value))}'"


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[:limit]}..."
