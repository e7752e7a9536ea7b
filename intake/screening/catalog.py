"""The catalog: the questionnaire and every rule-set version, loaded and checked from the data files."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from intake.screening.advice import RuleSetText, check_same_actions, parse_rule_texts
from intake.screening.datafiles import Problems, read_yaml
from intake.screening.items import QuestionnaireText, check_same_help, parse_structure, parse_texts
from intake.screening.model import RuleSetError
from intake.screening.questionnaire import Questionnaire
from intake.screening.rules import parse_rule_file
from intake.screening.ruleset import RuleSet
from intake.vocabulary import LANGUAGES

DATA_DIR = Path(__file__).resolve().parent / "data"

# <year>-<month>.<n>: sorts by date of the policy, then by revision within the month.
_VERSION = re.compile(r"^(\d{4})-(\d{2})\.(\d+)$")
_TEXTS_FILE = re.compile(rf"^(?P<version>.+)\.(?P<lang>{'|'.join(LANGUAGES)})\.yaml$")


@dataclass(frozen=True)
class Catalog:
    questionnaire: Questionnaire
    rule_sets: Mapping[str, RuleSet]
    latest: RuleSet

    def get(self, version: str) -> RuleSet:
        """The rule set of `version`; KeyError when there is none."""
        try:
            return self.rule_sets[version]
        except KeyError:
            raise KeyError(f"unknown rule-set version {version!r}") from None


def load_catalog(data_dir: Path | None = None) -> Catalog:
    """Read and check every data file; RuleSetError names each file and problem found."""
    root = DATA_DIR if data_dir is None else Path(data_dir)
    problems = Problems()
    questionnaire = _load_questionnaire(root, problems)
    # Rules are checked against the items: with a broken questionnaire that would only add noise.
    problems.raise_if_any()
    assert questionnaire is not None
    rule_sets = _load_rule_sets(root, questionnaire, problems)
    problems.raise_if_any()
    if not rule_sets:
        raise RuleSetError("rulesets: no rule set found")
    latest = max(rule_sets.values(), key=lambda rule_set: version_key(rule_set.version))
    return Catalog(
        questionnaire=questionnaire,
        rule_sets=MappingProxyType(dict(sorted(rule_sets.items(), key=lambda kv: version_key(kv[0])))),
        latest=latest,
    )


def version_key(version: str) -> tuple[int, int, int]:
    match = _VERSION.match(version)
    if match is None:
        raise ValueError(f"rule-set version {version!r} must look like YYYY-MM.N")
    year, month, revision = match.groups()
    return int(year), int(month), int(revision)


def _load_questionnaire(root: Path, problems: Problems) -> Questionnaire | None:
    found = len(problems.messages)
    sections = parse_structure(
        read_yaml(root / "questionnaire.yaml", "questionnaire.yaml", problems), "questionnaire.yaml", problems
    )
    # Wording checked against a broken structure would only repeat its problems.
    if not sections or len(problems.messages) > found:
        return None
    texts: dict[str, QuestionnaireText] = {}
    labels = {lang: f"questionnaire.{lang}.yaml" for lang in LANGUAGES}
    for lang, label in labels.items():
        raw = read_yaml(root / label, label, problems)
        if raw is None:
            continue
        text = parse_texts(raw, label, sections, problems)
        if text is not None:
            texts[lang] = text
    check_same_help(texts, labels, problems)
    return Questionnaire(sections, texts)


def _load_rule_sets(root: Path, questionnaire: Questionnaire, problems: Problems) -> dict[str, RuleSet]:
    folder = root / "rulesets"
    if not folder.is_dir():
        problems.add("rulesets", "folder is missing")
        return {}
    versions: list[str] = []
    text_files: dict[str, list[str]] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix in (".yml", ".json"):
            problems.add(f"rulesets/{path.name}", "rule sets are .yaml files")
        if path.suffix != ".yaml":
            continue
        match = _TEXTS_FILE.match(path.name)
        if match:
            text_files.setdefault(match["version"], []).append(match["lang"])
        elif _VERSION.match(path.stem):
            versions.append(path.stem)
        else:
            problems.add(f"rulesets/{path.name}", "name must be <YYYY-MM.N>.yaml or <YYYY-MM.N>.<lang>.yaml")
    for version in sorted(set(text_files) - set(versions)):
        problems.add(f"rulesets/{version}.yaml", "file is missing (texts exist for this version)")

    rule_sets: dict[str, RuleSet] = {}
    for version in versions:
        label = f"rulesets/{version}.yaml"
        raw = read_yaml(folder / f"{version}.yaml", label, problems)
        if raw is None:
            continue
        rule_file = parse_rule_file(raw, label, version, questionnaire.items, problems)
        if rule_file is None:
            continue
        texts: dict[str, RuleSetText] = {}
        labels = {lang: f"rulesets/{version}.{lang}.yaml" for lang in LANGUAGES}
        for lang, text_label in labels.items():
            raw_texts = read_yaml(folder / f"{version}.{lang}.yaml", text_label, problems)
            if raw_texts is None:
                continue
            text = parse_rule_texts(
                raw_texts, text_label, rule_file.declared_codes, rule_file.declared_advice, problems
            )
            if text is not None:
                texts[lang] = text
        check_same_actions(texts, labels, problems)
        rule_sets[version] = RuleSet(version, rule_file.rules, rule_file.per_point, texts)
    return rule_sets
