"""Strict reading of the screen's YAML data files, collecting every problem with its file name."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml

from intake.screening.model import RuleSetError

# Item ids and rule codes are stored with every screening and used in URLs and logs: keep them
# plain. Option codes may start with a digit (`1_7_days`).
IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
CODE = re.compile(r"^[a-z0-9][a-z0-9_]*$")


class _StrictSafeLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, which plain safe_load silently overwrites."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # an unhashable key: construct_mapping reports it below
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
    return loader.construct_mapping(node)


_StrictSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


class Problems:
    """Every problem found while loading, so that one run names all of them."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.messages.append(f"{where}: {message}")

    def raise_if_any(self) -> None:
        if self.messages:
            raise RuleSetError("\n".join(self.messages))


def read_yaml(path: Path, label: str, problems: Problems) -> object:
    """The parsed file, or None after reporting why it cannot be used."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.add(label, "file is missing")
        return None
    except (OSError, UnicodeDecodeError) as error:
        problems.add(label, f"cannot be read ({error})")
        return None
    try:
        data = yaml.load(text, Loader=_StrictSafeLoader)  # noqa: S506 -- a SafeLoader subclass
    except yaml.YAMLError as error:
        problems.add(label, f"not valid YAML: {' '.join(str(error).split())}")
        return None
    if data is None:
        problems.add(label, "file is empty")
    return data


def as_mapping(
    raw: object,
    where: str,
    problems: Problems,
    *,
    required: Collection[str] = (),
    optional: Collection[str] = (),
) -> Mapping[str, object] | None:
    """`raw` as a mapping with string keys, after reporting unknown and missing keys."""
    if not isinstance(raw, Mapping):
        problems.add(where, f"must be a mapping, not {_kind(raw)}")
        return None
    result: dict[str, object] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            problems.add(where, f"key {key!r} must be a string")
        elif key not in required and key not in optional:
            problems.add(where, f"unknown key '{key}'")
        else:
            result[key] = value
    for key in required:
        if key not in raw:
            problems.add(where, f"missing key '{key}'")
    return result


def as_text(raw: object, where: str, problems: Problems) -> str | None:
    """A non-empty string with surrounding whitespace removed."""
    if not isinstance(raw, str) or not raw.strip():
        problems.add(where, "must be a non-empty text")
        return None
    return raw.strip()


def as_int(raw: object, where: str, problems: Problems, *, minimum: int | None = None) -> int | None:
    # YAML `true` is a bool, and bool is an int in Python: refuse it explicitly.
    if isinstance(raw, bool) or not isinstance(raw, int):
        problems.add(where, f"must be a whole number, not {_kind(raw)}")
        return None
    if minimum is not None and raw < minimum:
        problems.add(where, f"must be at least {minimum}")
        return None
    return raw


def as_flag(raw: object, where: str, problems: Problems) -> bool:
    if not isinstance(raw, bool):
        problems.add(where, "must be true or false")
        return False
    return raw


def _kind(raw: object) -> str:
    if raw is None:
        return "nothing"
    if isinstance(raw, bool):
        return "true/false"
    return {dict: "a mapping", list: "a list", str: "a text", int: "a number", float: "a number"}.get(
        type(raw), type(raw).__name__
    )
