"""The questionnaire's items and wording as data: their types, and reading and checking the files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, cast

from intake.screening.datafiles import (
    CODE,
    IDENTIFIER,
    Problems,
    as_flag,
    as_int,
    as_mapping,
    as_text,
)

ItemType = Literal["choice", "integer", "boolean", "text"]
ITEM_TYPES: tuple[ItemType, ...] = ("choice", "integer", "boolean", "text")


@dataclass(frozen=True, slots=True)
class EnableWhen:
    """The item is shown when `question` was answered with `answer` (FHIR operator "=")."""

    question: str
    answer: str | bool


@dataclass(frozen=True, slots=True)
class Item:
    link_id: str
    type: ItemType
    required: bool = False
    repeats: bool = False
    options: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    below_min_message: str | None = None
    enable_when: tuple[EnableWhen, ...] = ()
    enable_behavior: Literal["any", "all"] = "all"


@dataclass(frozen=True, slots=True)
class Section:
    link_id: str
    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True)
class ItemText:
    text: str
    help: str | None
    options: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class QuestionnaireText:
    title: str
    description: str
    sections: Mapping[str, str]
    items: Mapping[str, ItemText]


_ITEM_KEYS = (
    "required",
    "repeats",
    "options",
    "min",
    "max",
    "maxLength",
    "below_min_message",
    "enableWhen",
    "enableBehavior",
)


def parse_structure(raw: object, label: str, problems: Problems) -> tuple[Section, ...]:
    """The sections and items of questionnaire.yaml, every problem reported to `problems`."""
    top = as_mapping(raw, label, problems, required=("sections",))
    if top is None or "sections" not in top:
        return ()
    raw_sections = top["sections"]
    if not isinstance(raw_sections, list) or not raw_sections:
        problems.add(f"{label}: sections", "must be a non-empty list")
        return ()
    seen: dict[str, Item] = {}
    section_ids: set[str] = set()
    sections: list[Section] = []
    for index, raw_section in enumerate(raw_sections):
        where = f"{label}: section {index + 1}"
        section = as_mapping(raw_section, where, problems, required=("linkId", "items"))
        if section is None:
            continue
        link_id = _identifier(section.get("linkId"), f"{where}: linkId", problems)
        if link_id is not None:
            where = f"{label}: section '{link_id}'"
            if link_id in section_ids or link_id in seen:
                problems.add(where, f"duplicate linkId '{link_id}'")
            section_ids.add(link_id)
        raw_items = section.get("items")
        if not isinstance(raw_items, list) or not raw_items:
            problems.add(f"{where}: items", "must be a non-empty list")
            continue
        items: list[Item] = []
        for position, raw_item in enumerate(raw_items):
            item = _parse_item(raw_item, f"{where}: item {position + 1}", label, seen, section_ids, problems)
            if item is not None:
                seen[item.link_id] = item
                items.append(item)
        if link_id is not None:
            sections.append(Section(link_id, tuple(items)))
    return tuple(sections)


def _parse_item(
    raw: object,
    where: str,
    label: str,
    earlier: Mapping[str, Item],
    section_ids: set[str],
    problems: Problems,
) -> Item | None:
    named = raw.get("linkId") if isinstance(raw, Mapping) else None
    if isinstance(named, str) and IDENTIFIER.match(named):
        where = f"{label}: item '{named}'"
    entry = as_mapping(raw, where, problems, required=("linkId", "type"), optional=_ITEM_KEYS)
    if entry is None:
        return None
    link_id = _identifier(entry.get("linkId"), f"{where}: linkId", problems)
    if link_id is None:
        return None
    if link_id in earlier or link_id in section_ids:
        problems.add(where, f"duplicate linkId '{link_id}'")
        return None
    item_type = entry.get("type")
    if item_type not in ITEM_TYPES:
        problems.add(where, f"unknown type {item_type!r}; use one of {', '.join(ITEM_TYPES)}")
        return None
    kind: ItemType = item_type
    allowed = {
        "choice": {"options", "repeats"},
        "integer": {"min", "max", "below_min_message"},
        "boolean": set(),
        "text": {"maxLength"},
    }[kind]
    for key in ("options", "repeats", "min", "max", "below_min_message", "maxLength"):
        if key in entry and key not in allowed:
            problems.add(where, f"'{key}' does not apply to a {kind} item")

    options: tuple[str, ...] = ()
    minimum = maximum = max_length = None
    below_min_message = None
    if kind == "choice":
        options = _options(entry.get("options"), f"{where}: options", problems)
    if kind == "integer":
        minimum = as_int(entry.get("min"), f"{where}: min", problems)
        maximum = as_int(entry.get("max"), f"{where}: max", problems)
        if minimum is not None and maximum is not None and minimum > maximum:
            problems.add(where, f"min {minimum} is above max {maximum}")
        if "below_min_message" in entry:
            below_min_message = as_text(entry["below_min_message"], f"{where}: below_min_message", problems)
    if kind == "text":
        max_length = as_int(entry.get("maxLength"), f"{where}: maxLength", problems, minimum=1)
    enable_when, behavior = _enable_when(entry, where, earlier, problems)
    return Item(
        link_id=link_id,
        type=kind,
        required=as_flag(entry.get("required", False), f"{where}: required", problems),
        repeats=as_flag(entry.get("repeats", False), f"{where}: repeats", problems) if kind == "choice" else False,
        options=options,
        minimum=minimum,
        maximum=maximum,
        max_length=max_length,
        below_min_message=below_min_message,
        enable_when=enable_when,
        enable_behavior=behavior,
    )


def _options(raw: object, where: str, problems: Problems) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        problems.add(where, "must be a non-empty list of codes")
        return ()
    codes: list[str] = []
    for code in raw:
        if not isinstance(code, str) or not CODE.match(code):
            problems.add(where, f"option {code!r} must be a code of lower-case letters, digits and _")
        elif code in codes:
            problems.add(where, f"duplicate option '{code}'")
        else:
            codes.append(code)
    return tuple(codes)


def _enable_when(
    entry: Mapping[str, object], where: str, earlier: Mapping[str, Item], problems: Problems
) -> tuple[tuple[EnableWhen, ...], Literal["any", "all"]]:
    raw = entry.get("enableWhen")
    if raw is None:
        if "enableBehavior" in entry:
            problems.add(where, "enableBehavior without enableWhen")
        return (), "all"
    if not isinstance(raw, list) or not raw:
        problems.add(f"{where}: enableWhen", "must be a non-empty list")
        return (), "all"
    conditions: list[EnableWhen] = []
    for index, raw_condition in enumerate(raw):
        here = f"{where}: enableWhen {index + 1}"
        condition = as_mapping(raw_condition, here, problems, required=("question", "answer"))
        if condition is None or "question" not in condition or "answer" not in condition:
            continue
        question, answer = condition["question"], condition["answer"]
        # Only earlier questions: the form reads top to bottom and no item can hide itself.
        target = earlier.get(question) if isinstance(question, str) else None
        if target is None:
            problems.add(here, f"question {question!r} is not an earlier item")
        elif target.type == "boolean" and isinstance(answer, bool):
            conditions.append(EnableWhen(target.link_id, answer))
        elif target.type == "choice" and not target.repeats and isinstance(answer, str):
            if answer in target.options:
                conditions.append(EnableWhen(target.link_id, answer))
            else:
                problems.add(here, f"'{answer}' is not an option of '{target.link_id}'")
        else:
            problems.add(here, f"answer {answer!r} cannot be compared with the {target.type} item '{target.link_id}'")
    behavior = entry.get("enableBehavior", "all")
    if len(raw) > 1 and "enableBehavior" not in entry:
        problems.add(where, "enableBehavior (any or all) is required with several enableWhen conditions")
    if behavior not in ("any", "all"):
        problems.add(where, f"enableBehavior must be 'any' or 'all', not {behavior!r}")
        behavior = "all"
    return tuple(conditions), cast(Literal["any", "all"], behavior)


def _identifier(raw: object, where: str, problems: Problems) -> str | None:
    if not isinstance(raw, str) or not IDENTIFIER.match(raw):
        problems.add(where, f"{raw!r} must be an id of lower-case letters, digits and _")
        return None
    return raw


def parse_texts(raw: object, label: str, sections: tuple[Section, ...], problems: Problems) -> QuestionnaireText | None:
    """The wording of questionnaire.<lang>.yaml, checked against the structure."""
    top = as_mapping(raw, label, problems, required=("title", "description", "sections", "items"))
    if top is None:
        return None
    title = as_text(top.get("title"), f"{label}: title", problems)
    description = as_text(top.get("description"), f"{label}: description", problems)

    section_texts: dict[str, str] = {}
    section_ids = [section.link_id for section in sections]
    raw_sections = as_mapping(top.get("sections", {}), f"{label}: sections", problems, optional=section_ids)
    for link_id in section_ids:
        if raw_sections is not None and link_id not in raw_sections:
            problems.add(f"{label}: sections", f"missing title for section '{link_id}'")
        elif raw_sections is not None:
            text = as_text(raw_sections[link_id], f"{label}: section '{link_id}'", problems)
            if text is not None:
                section_texts[link_id] = text

    items = {item.link_id: item for section in sections for item in section.items}
    item_texts: dict[str, ItemText] = {}
    raw_items = as_mapping(top.get("items", {}), f"{label}: items", problems, optional=list(items))
    if raw_items is not None:
        for link_id, item in items.items():
            if link_id not in raw_items:
                problems.add(f"{label}: items", f"missing text for item '{link_id}'")
                continue
            item_text = _parse_item_text(raw_items[link_id], f"{label}: item '{link_id}'", item, problems)
            if item_text is not None:
                item_texts[link_id] = item_text
    if title is None or description is None:
        return None
    return QuestionnaireText(
        title=title,
        description=description,
        sections=MappingProxyType(section_texts),
        items=MappingProxyType(item_texts),
    )


def _parse_item_text(raw: object, where: str, item: Item, problems: Problems) -> ItemText | None:
    keys = ("help", "options") if item.type == "choice" else ("help",)
    entry = as_mapping(raw, where, problems, required=("text",), optional=keys)
    if entry is None:
        return None
    text = as_text(entry.get("text"), f"{where}: text", problems)
    help_text = as_text(entry["help"], f"{where}: help", problems) if "help" in entry else None
    displays: dict[str, str] = {}
    if item.type == "choice":
        raw_options = as_mapping(entry.get("options", {}), f"{where}: options", problems, optional=item.options)
        for code in item.options:
            if raw_options is not None and code not in raw_options:
                problems.add(f"{where}: options", f"missing text for option '{code}'")
            elif raw_options is not None:
                display = as_text(raw_options[code], f"{where}: option '{code}'", problems)
                if display is not None:
                    displays[code] = display
    if text is None:
        return None
    return ItemText(text=text, help=help_text, options=MappingProxyType(displays))


def check_same_help(texts: Mapping[str, QuestionnaireText], labels: Mapping[str, str], problems: Problems) -> None:
    """Help text is optional, but a question has it in every language or in none."""
    languages = list(texts)
    for link_id in texts[languages[0]].items if languages else ():
        with_help = [lang for lang in languages if link_id in texts[lang].items and texts[lang].items[link_id].help]
        if with_help and len(with_help) != len(languages):
            for lang in languages:
                if lang not in with_help:
                    problems.add(labels[lang], f"item '{link_id}': missing help text (it has one in {with_help[0]})")
