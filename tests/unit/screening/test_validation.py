"""Answer validation: each kind of mistake is reported on its field, all of them at once."""

from __future__ import annotations

from typing import Any

import pytest

from intake.problems import FieldProblem
from intake.screening import Catalog, Questionnaire
from tests.unit.screening.policy import REQUIRED, baseline


@pytest.fixture(scope="module")
def questionnaire(catalog: Catalog) -> Questionnaire:
    return catalog.questionnaire


def errors_of(questionnaire: Questionnaire, answers: object) -> dict[str, str]:
    _, errors = questionnaire.validate(answers)
    fields = [error.field for error in errors]
    assert len(fields) == len(set(fields)), f"one error per field expected: {errors}"
    return {error.field: error.message for error in errors}


def only_error(questionnaire: Questionnaire, **changes: Any) -> tuple[str, str]:
    errors = errors_of(questionnaire, baseline(**changes))
    assert len(errors) == 1, errors
    return next(iter(errors.items()))


def test_valid_answers_come_back_unchanged(questionnaire: Questionnaire) -> None:
    answers = baseline(
        spread="one_leg",
        below_knee=True,
        pregnant=True,
        labor_signs=False,
        conditions=["arthritis"],
        goals="Walk my dog",
        daily_impact=0,
    )
    normalised, errors = questionnaire.validate(answers)
    assert errors == []
    assert normalised == answers


def test_null_optional_answer_counts_as_left_out(questionnaire: Questionnaire) -> None:
    normalised, errors = questionnaire.validate(baseline(fever=None, spread=None, below_knee=None))
    assert errors == []
    assert normalised == baseline()


@pytest.mark.parametrize("answers", [None, [], ["pain_now", 3], "pain_now=3", 42])
def test_answers_must_be_an_object(questionnaire: Questionnaire, answers: object) -> None:
    normalised, errors = questionnaire.validate(answers)
    assert normalised == {}
    assert [e.field for e in errors] == ["answers"]
    assert "object" in errors[0].message


def test_unknown_question(questionnaire: Questionnaire) -> None:
    field, message = only_error(questionnaire, fevr=True)
    assert field == "answers.fevr"
    assert "'fevr'" in message
    assert "Unknown question" in message


def test_unknown_single_choice_code(questionnaire: Questionnaire) -> None:
    field, message = only_error(questionnaire, spread="left_leg")
    assert field == "answers.spread"
    assert "'spread'" in message
    assert "'left_leg'" in message
    assert "both_legs" in message


def test_unknown_multi_choice_code(questionnaire: Questionnaire) -> None:
    field, message = only_error(questionnaire, pain_area=["lower_back", "knee"])
    assert field == "answers.pain_area"
    assert "'knee'" in message


def test_many_unknown_codes_are_summarised(questionnaire: Questionnaire) -> None:
    field, message = only_error(questionnaire, symptoms=[f"x{i}" for i in range(1000)])
    assert field == "answers.symptoms"
    assert len(message) < 300


@pytest.mark.parametrize(
    ("item", "value"),
    [
        ("pain_now", True),  # a bool is not an integer
        ("pain_now", False),
        ("pain_now", "5"),
        ("pain_now", 5.0),
        ("age", 40.5),
        ("fever", 1),  # an integer is not a bool
        ("fever", 0),
        ("fever", "yes"),
        ("spread", 2),
        ("spread", ["one_leg"]),
        ("pain_area", "lower_back"),  # multi-choice must be a list
        ("pain_area", {"lower_back": True}),
        ("symptoms", [1, 2]),
        ("goals", 12),
    ],
)
def test_wrong_type(questionnaire: Questionnaire, item: str, value: object) -> None:
    field, message = only_error(questionnaire, **{item: value})
    assert field == f"answers.{item}"
    assert f"'{item}'" in message


@pytest.mark.parametrize(
    ("item", "value"),
    [("pain_now", -1), ("pain_now", 11), ("daily_impact", 11), ("daily_impact", -3), ("age", 121)],
)
def test_out_of_range(questionnaire: Questionnaire, item: str, value: int) -> None:
    field, message = only_error(questionnaire, **{item: value})
    assert field == f"answers.{item}"
    assert f"'{item}'" in message


@pytest.mark.parametrize("age", [16, 17, 64, 65, 120])
def test_ages_16_to_120_are_accepted(questionnaire: Questionnaire, age: int) -> None:
    assert errors_of(questionnaire, baseline(age=age)) == {}


@pytest.mark.parametrize("age", [15, 0, -1])
def test_under_16_is_told_the_screen_is_for_16_and_over(questionnaire: Questionnaire, age: int) -> None:
    field, message = only_error(questionnaire, age=age)
    assert field == "answers.age"
    assert "16 and over" in message
    assert "'age'" in message


def test_duplicate_choices(questionnaire: Questionnaire) -> None:
    field, message = only_error(questionnaire, conditions=["arthritis", "anxiety", "arthritis"])
    assert field == "answers.conditions"
    assert "'arthritis'" in message
    assert "more than once" in message


@pytest.mark.parametrize("item", REQUIRED)
def test_missing_required_item(questionnaire: Questionnaire, item: str) -> None:
    answers = baseline()
    del answers[item]
    errors = errors_of(questionnaire, answers)
    assert list(errors) == [f"answers.{item}"]
    assert f"'{item}'" in errors[f"answers.{item}"]
    assert "required" in errors[f"answers.{item}"]


@pytest.mark.parametrize("item", REQUIRED)
def test_null_required_item_is_missing(questionnaire: Questionnaire, item: str) -> None:
    field, message = only_error(questionnaire, **{item: None})
    assert field == f"answers.{item}"
    assert "required" in message


def test_required_multi_choice_needs_one_option(questionnaire: Questionnaire) -> None:
    field, message = only_error(questionnaire, pain_area=[])
    assert field == "answers.pain_area"
    assert "at least one" in message


def test_optional_multi_choice_may_be_empty(questionnaire: Questionnaire) -> None:
    assert errors_of(questionnaire, baseline(conditions=[], symptoms=[])) == {}


def test_text_too_long(questionnaire: Questionnaire) -> None:
    assert errors_of(questionnaire, baseline(goals="x" * 2000)) == {}
    field, message = only_error(questionnaire, goals="x" * 2001)
    assert field == "answers.goals"
    assert "2000" in message


@pytest.mark.parametrize("pregnant", [False, None])
@pytest.mark.parametrize("labor_signs", [True, False])
def test_labor_signs_only_when_pregnant(questionnaire: Questionnaire, pregnant: bool | None, labor_signs: bool) -> None:
    field, message = only_error(questionnaire, pregnant=pregnant, labor_signs=labor_signs)
    assert field == "answers.labor_signs"
    assert "'labor_signs'" in message
    assert "'pregnant'" in message


@pytest.mark.parametrize("spread", ["none", "buttocks_hips", None])
def test_below_knee_only_when_spreading_down_a_leg(questionnaire: Questionnaire, spread: str | None) -> None:
    field, message = only_error(questionnaire, spread=spread, below_knee=True)
    assert field == "answers.below_knee"
    assert "'below_knee'" in message
    assert "one_leg" in message


@pytest.mark.parametrize("spread", ["one_leg", "both_legs"])
def test_below_knee_when_spreading_down_a_leg(questionnaire: Questionnaire, spread: str) -> None:
    assert errors_of(questionnaire, baseline(spread=spread, below_knee=False)) == {}


def test_bad_controlling_answer_is_reported_once(questionnaire: Questionnaire) -> None:
    errors = errors_of(questionnaire, baseline(spread="sideways", below_knee=True))
    assert list(errors) == ["answers.spread"]


def test_all_errors_are_reported_together(questionnaire: Questionnaire) -> None:
    answers = baseline(fevr=True, pain_now=11, spread="none", below_knee=True, fever="yes", age=15)
    del answers["duration"]
    normalised, errors = questionnaire.validate(answers)
    assert {e.field for e in errors} == {
        "answers.fevr",
        "answers.pain_now",
        "answers.below_knee",
        "answers.fever",
        "answers.age",
        "answers.duration",
    }
    assert all(isinstance(e, FieldProblem) and e.message for e in errors)
    assert "below_knee" not in normalised
    assert "pain_now" not in normalised


def test_every_message_names_its_item(questionnaire: Questionnaire) -> None:
    answers = {
        "pain_area": "lower_back",
        "pain_now": True,
        "duration": "forever",
        "injury": None,
        "age": "40",
        "goals": "x" * 3000,
        "labor_signs": True,
    }
    for error in questionnaire.validate(answers)[1]:
        link_id = error.field.removeprefix("answers.")
        assert f"'{link_id}'" in error.message
