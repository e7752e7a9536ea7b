"""The questionnaire as a FHIR Questionnaire: its shape, items, options and show-when conditions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from intake.screening import Catalog
from tests.unit.screening.policy import ITEMS, RANGES, SECTIONS

MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"


def walk(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from walk(item.get("item", []))


def questions(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = [item for item in walk(resource["item"]) if item["type"] not in ("group", "display")]
    by_id = {item["linkId"]: item for item in found}
    assert len(by_id) == len(found), "a linkId appears more than once"
    return by_id


@pytest.fixture(scope="module", params=["en", "es"])
def resource(request: pytest.FixtureRequest, catalog: Catalog) -> dict[str, Any]:
    rendered: dict[str, Any] = catalog.questionnaire.as_fhir(request.param, "2026-11.1")
    return rendered


def test_resource_header(resource: dict[str, Any]) -> None:
    assert resource["resourceType"] == "Questionnaire"
    assert resource["status"] == "active"
    assert resource["language"] in ("en", "es")
    assert resource["version"] == "2026-11.1"
    assert resource["title"]
    json.dumps(resource)  # plain JSON, ready for a response body


def test_sections_are_groups(resource: dict[str, Any]) -> None:
    groups = resource["item"]
    assert [g["linkId"] for g in groups] == list(SECTIONS)
    assert all(g["type"] == "group" and g["text"] for g in groups)


def test_every_policy_item_exactly_once(resource: dict[str, Any]) -> None:
    assert set(questions(resource)) == set(ITEMS)


def test_types_required_repeats_and_options_match_the_policy(resource: dict[str, Any]) -> None:
    for link_id, item in questions(resource).items():
        kind, repeats, options, required = ITEMS[link_id]
        assert item["type"] == kind, link_id
        assert item["required"] is required, link_id
        assert item["repeats"] is repeats, link_id
        assert item["text"], link_id
        codes = [option["valueCoding"]["code"] for option in item.get("answerOption", [])]
        assert codes == list(options), link_id
        assert all(option["valueCoding"]["display"] for option in item.get("answerOption", []))


def test_integer_ranges_and_text_length(resource: dict[str, Any]) -> None:
    items = questions(resource)
    for link_id, (low, high) in RANGES.items():
        extensions = {e["url"]: e["valueInteger"] for e in items[link_id]["extension"]}
        assert extensions == {MIN_VALUE: low, MAX_VALUE: high}, link_id
    assert items["goals"]["maxLength"] == 2000


def test_below_knee_shows_when_spreading_down_a_leg(resource: dict[str, Any]) -> None:
    item = questions(resource)["below_knee"]
    assert item["enableWhen"] == [
        {"question": "spread", "operator": "=", "answerCoding": {"code": "one_leg"}},
        {"question": "spread", "operator": "=", "answerCoding": {"code": "both_legs"}},
    ]
    assert item["enableBehavior"] == "any"


def test_labor_signs_show_when_pregnant(resource: dict[str, Any]) -> None:
    item = questions(resource)["labor_signs"]
    assert item["enableWhen"] == [{"question": "pregnant", "operator": "=", "answerBoolean": True}]
    assert "enableBehavior" not in item


def test_only_two_items_are_conditional(resource: dict[str, Any]) -> None:
    assert {link_id for link_id, item in questions(resource).items() if "enableWhen" in item} == {
        "below_knee",
        "labor_signs",
    }


def test_help_texts_are_display_items(resource: dict[str, Any]) -> None:
    helps = [item for item in walk(resource["item"]) if item["type"] == "display"]
    assert helps, "some questions carry help text"
    for item in helps:
        assert item["linkId"].endswith(".help")
        assert item["text"]


def test_languages_differ(catalog: Catalog) -> None:
    english = questions(catalog.questionnaire.as_fhir("en", "2026-11.1"))
    spanish = questions(catalog.questionnaire.as_fhir("es", "2026-11.1"))
    assert english["fever"]["text"] != spanish["fever"]["text"]
    assert spanish["pain_area"]["answerOption"][0]["valueCoding"]["display"] == "Parte baja de la espalda"
