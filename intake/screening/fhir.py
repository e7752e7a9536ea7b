"""The questionnaire rendered as a FHIR R4 Questionnaire resource, for forms and other systems."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from intake.screening.items import EnableWhen, Item, ItemText, QuestionnaireText, Section

_FHIR_MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
_FHIR_MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
_FHIR_ITEM_CONTROL = "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl"
_FHIR_ITEM_CONTROL_SYSTEM = "http://hl7.org/fhir/questionnaire-item-control"


def render(sections: Sequence[Section], texts: QuestionnaireText, lang: str, version: str) -> dict[str, Any]:
    """Min/max ride on the standard minValue/maxValue extensions, help text on a child
    display item with the "help" item control, so any FHIR form renderer understands them."""
    return {
        "resourceType": "Questionnaire",
        "status": "active",
        "language": lang,
        "version": version,
        "name": "BackPainScreen",
        "title": texts.title,
        "description": texts.description,
        "item": [
            {
                "linkId": section.link_id,
                "type": "group",
                "text": texts.sections[section.link_id],
                "item": [_fhir_item(item, texts.items[item.link_id]) for item in section.items],
            }
            for section in sections
        ],
    }


def _fhir_item(item: Item, text: ItemText) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "linkId": item.link_id,
        "type": item.type,
        "text": text.text,
        "required": item.required,
        "repeats": item.repeats,
    }
    if item.type == "choice":
        entry["answerOption"] = [
            {"valueCoding": {"code": code, "display": text.options[code]}} for code in item.options
        ]
    if item.type == "integer":
        entry["extension"] = [
            {"url": _FHIR_MIN_VALUE, "valueInteger": item.minimum},
            {"url": _FHIR_MAX_VALUE, "valueInteger": item.maximum},
        ]
    if item.max_length is not None:
        entry["maxLength"] = item.max_length
    if item.enable_when:
        entry["enableWhen"] = [_fhir_enable_when(condition) for condition in item.enable_when]
        if len(item.enable_when) > 1:
            entry["enableBehavior"] = item.enable_behavior
    if text.help is not None:
        # FHIR carries help text as a child display item marked with the "help" item control.
        entry["item"] = [
            {
                "linkId": f"{item.link_id}.help",
                "type": "display",
                "text": text.help,
                "extension": [
                    {
                        "url": _FHIR_ITEM_CONTROL,
                        "valueCodeableConcept": {"coding": [{"system": _FHIR_ITEM_CONTROL_SYSTEM, "code": "help"}]},
                    }
                ],
            }
        ]
    return entry


def _fhir_enable_when(condition: EnableWhen) -> dict[str, Any]:
    entry: dict[str, Any] = {"question": condition.question, "operator": "="}
    if isinstance(condition.answer, bool):
        entry["answerBoolean"] = condition.answer
    else:
        entry["answerCoding"] = {"code": condition.answer}
    return entry
