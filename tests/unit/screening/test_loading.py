"""Loading the data files: the shipped ones load; a broken copy fails with a message naming the problem."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from intake.screening import Catalog, RuleSetError, load_catalog
from intake.screening.catalog import DATA_DIR

RULES = "rulesets/2026-11.1.yaml"
RULES_EN = "rulesets/2026-11.1.en.yaml"
RULES_ES = "rulesets/2026-11.1.es.yaml"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(DATA_DIR, target)
    return target


def edit(data_dir: Path, name: str, change: Callable[[Any], None]) -> None:
    path = data_dir / name
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(content)
    path.write_text(yaml.safe_dump(content, allow_unicode=True, sort_keys=False), encoding="utf-8")


def replace(data_dir: Path, name: str, old: str, new: str) -> None:
    path = data_dir / name
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def rule(content: dict[str, Any], code: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in content["rules"] if r["code"] == code)
    return found


def load_error(data_dir: Path) -> str:
    with pytest.raises(RuleSetError) as caught:
        load_catalog(data_dir)
    return str(caught.value)


def test_shipped_data_loads(catalog: Catalog) -> None:
    assert list(catalog.rule_sets) == ["2026-11.1"]
    assert catalog.latest is catalog.get("2026-11.1")
    assert len(catalog.questionnaire.items) == 31


def test_copy_of_shipped_data_loads(data_dir: Path) -> None:
    assert load_catalog(data_dir).latest.version == "2026-11.1"


def test_unknown_version_is_a_key_error(catalog: Catalog) -> None:
    with pytest.raises(KeyError, match=r"1999-01\.1"):
        catalog.get("1999-01.1")


def test_latest_is_the_highest_version(data_dir: Path) -> None:
    for suffix in (".yaml", ".en.yaml", ".es.yaml"):
        for version in ("2026-12.2", "2026-12.10", "2026-09.7"):
            shutil.copy(data_dir / f"rulesets/2026-11.1{suffix}", data_dir / f"rulesets/{version}{suffix}")
            if suffix == ".yaml":
                replace(data_dir, f"rulesets/{version}.yaml", 'version: "2026-11.1"', f'version: "{version}"')
    catalog = load_catalog(data_dir)
    assert catalog.latest.version == "2026-12.10"
    assert list(catalog.rule_sets) == ["2026-09.7", "2026-11.1", "2026-12.2", "2026-12.10"]
    assert catalog.get("2026-11.1").version == "2026-11.1"


def test_unknown_item_in_a_rule(data_dir: Path) -> None:
    edit(data_dir, RULES, lambda c: rule(c, "fever")["when"].update(item="fevr"))
    assert f"{RULES}: rule 'fever': when: unknown item 'fevr'" in load_error(data_dir)


def test_unknown_item_nested_in_all(data_dir: Path) -> None:
    edit(data_dir, RULES, lambda c: rule(c, "not_improving")["when"]["all"][1].update(item="improvng"))
    message = load_error(data_dir)
    assert "rule 'not_improving'" in message
    assert "unknown item 'improvng'" in message


def test_unknown_tier(data_dir: Path) -> None:
    edit(data_dir, RULES, lambda c: rule(c, "fever").update(tier="critical"))
    assert f"{RULES}: rule 'fever': unknown tier 'critical'" in load_error(data_dir)


def test_option_code_not_in_the_items_options(data_dir: Path) -> None:
    edit(
        data_dir,
        RULES,
        lambda c: rule(c, "major_injury_recent")["when"]["all"][1].update({"in": ["1_8_days"]}),
    )
    message = load_error(data_dir)
    assert "rule 'major_injury_recent'" in message
    assert "'1_8_days' is not an option of 'duration'" in message


def test_bad_operator(data_dir: Path) -> None:
    edit(data_dir, RULES, lambda c: rule(c, "high_pain").update(when={"item": "pain_now", "greater_than": 6}))
    assert "rule 'high_pain': when: unknown operator 'greater_than'" in load_error(data_dir)


def test_operator_that_does_not_fit_the_item(data_dir: Path) -> None:
    edit(data_dir, RULES, lambda c: rule(c, "fever").update(when={"item": "fever", "gte": 1}))
    assert "'gte' needs an integer item" in load_error(data_dir)


def test_text_item_is_never_scored(data_dir: Path) -> None:
    edit(data_dir, RULES, lambda c: rule(c, "fever").update(when={"item": "goals", "is": "x"}))
    assert "'goals' is free text" in load_error(data_dir)


def test_duplicate_rule_code(data_dir: Path) -> None:
    edit(data_dir, RULES, lambda c: rule(c, "swelling").update(code="fever"))
    assert "duplicate code 'fever'" in load_error(data_dir)


def test_unknown_key_in_a_rule(data_dir: Path) -> None:
    edit(data_dir, RULES, lambda c: rule(c, "fever").update(weigth=3))
    assert f"{RULES}: rule 'fever': unknown key 'weigth'" in load_error(data_dir)


def test_broken_rule_is_reported_once(data_dir: Path) -> None:
    edit(data_dir, RULES, lambda c: rule(c, "fever").update(tier="critical"))
    assert load_error(data_dir) == f"{RULES}: rule 'fever': unknown tier 'critical'; use one of " + ", ".join(
        ("emergency", "urgent", "soon", "routine")
    )


def test_negative_weight(data_dir: Path) -> None:
    edit(data_dir, RULES, lambda c: rule(c, "fever").update(weight=-1))
    assert "rule 'fever': weight: must be at least 0" in load_error(data_dir)


def test_version_must_match_file_name(data_dir: Path) -> None:
    edit(data_dir, RULES, lambda c: c.update(version="2026-12.1"))
    assert "does not match the file name" in load_error(data_dir)


def test_duplicate_yaml_key_is_refused(data_dir: Path) -> None:
    replace(data_dir, RULES_EN, "reasons:\n", "reasons:\n  fever: Fever.\n")
    assert f"{RULES_EN}: not valid YAML" in load_error(data_dir)
    assert "duplicate key 'fever'" in load_error(data_dir)


def test_missing_spanish_reason(data_dir: Path) -> None:
    edit(data_dir, RULES_ES, lambda c: c["reasons"].pop("fever"))
    assert f"{RULES_ES}: reasons: missing text for rule 'fever'" in load_error(data_dir)


def test_reason_for_a_rule_that_does_not_exist(data_dir: Path) -> None:
    edit(data_dir, RULES_EN, lambda c: c["reasons"].update(fevr="Fever."))
    assert f"{RULES_EN}: reasons: unknown key 'fevr'" in load_error(data_dir)


def test_missing_spanish_advice(data_dir: Path) -> None:
    edit(data_dir, RULES_ES, lambda c: c["advice"].pop("pregnancy_labor"))
    assert f"{RULES_ES}: advice: missing advice 'pregnancy_labor'" in load_error(data_dir)


def test_missing_note_of_a_rules_own_advice(data_dir: Path) -> None:
    edit(data_dir, RULES_EN, lambda c: c["advice"]["pregnancy_labor"].pop("note"))
    assert "advice 'pregnancy_labor': missing key 'note'" in load_error(data_dir)


def test_unknown_action_kind(data_dir: Path) -> None:
    edit(data_dir, RULES_EN, lambda c: c["advice"]["soon"]["actions"].update(email="Email us"))
    assert "advice 'soon': actions: unknown key 'email'" in load_error(data_dir)


def test_actions_differ_between_languages(data_dir: Path) -> None:
    edit(data_dir, RULES_ES, lambda c: c["advice"]["soon"]["actions"].pop("call_clinic"))
    assert f"{RULES_ES}: advice 'soon': actions" in load_error(data_dir)


def test_missing_disclaimer(data_dir: Path) -> None:
    edit(data_dir, RULES_ES, lambda c: c.pop("disclaimer"))
    assert f"{RULES_ES}: missing key 'disclaimer'" in load_error(data_dir)


def test_missing_texts_file(data_dir: Path) -> None:
    (data_dir / RULES_ES).unlink()
    assert f"{RULES_ES}: file is missing" in load_error(data_dir)


def test_texts_without_rules(data_dir: Path) -> None:
    shutil.copy(data_dir / RULES_EN, data_dir / "rulesets/2027-01.1.en.yaml")
    assert "rulesets/2027-01.1.yaml: file is missing" in load_error(data_dir)


def test_badly_named_rule_set(data_dir: Path) -> None:
    shutil.copy(data_dir / RULES, data_dir / "rulesets/latest.yaml")
    assert "rulesets/latest.yaml: name must be" in load_error(data_dir)


def test_missing_spanish_option_text(data_dir: Path) -> None:
    edit(data_dir, "questionnaire.es.yaml", lambda c: c["items"]["spread"]["options"].pop("one_leg"))
    assert "questionnaire.es.yaml: item 'spread': options: missing text for option 'one_leg'" in load_error(data_dir)


def test_missing_item_text(data_dir: Path) -> None:
    edit(data_dir, "questionnaire.en.yaml", lambda c: c["items"].pop("fever"))
    assert "questionnaire.en.yaml: items: missing text for item 'fever'" in load_error(data_dir)


def test_missing_section_title(data_dir: Path) -> None:
    edit(data_dir, "questionnaire.es.yaml", lambda c: c["sections"].pop("impact"))
    assert "questionnaire.es.yaml: sections: missing title for section 'impact'" in load_error(data_dir)


def test_help_text_in_one_language_only(data_dir: Path) -> None:
    edit(data_dir, "questionnaire.es.yaml", lambda c: c["items"]["pain_area"].pop("help"))
    assert "questionnaire.es.yaml: item 'pain_area': missing help text" in load_error(data_dir)


def test_unknown_key_in_an_item(data_dir: Path) -> None:
    edit(data_dir, "questionnaire.yaml", lambda c: c["sections"][0]["items"][0].update(requried=True))
    assert load_error(data_dir) == "questionnaire.yaml: item 'pain_area': unknown key 'requried'"


def test_unknown_item_type(data_dir: Path) -> None:
    edit(data_dir, "questionnaire.yaml", lambda c: c["sections"][0]["items"][0].update(type="choise"))
    assert load_error(data_dir).startswith("questionnaire.yaml: item 'pain_area': unknown type 'choise'")


def test_duplicate_option_code(data_dir: Path) -> None:
    edit(data_dir, "questionnaire.yaml", lambda c: c["sections"][0]["items"][0]["options"].append("mid_back"))
    assert "questionnaire.yaml: item 'pain_area': options: duplicate option 'mid_back'" in load_error(data_dir)


def test_duplicate_link_id(data_dir: Path) -> None:
    edit(data_dir, "questionnaire.yaml", lambda c: c["sections"][1]["items"][0].update(linkId="fever"))
    assert "duplicate linkId 'fever'" in load_error(data_dir)


def test_enable_when_on_an_unknown_option(data_dir: Path) -> None:
    edit(
        data_dir,
        "questionnaire.yaml",
        lambda c: c["sections"][0]["items"][-1]["enableWhen"][0].update(answer="left_leg"),
    )
    assert "item 'below_knee': enableWhen 1: 'left_leg' is not an option of 'spread'" in load_error(data_dir)


def test_several_problems_are_reported_together(data_dir: Path) -> None:
    edit(data_dir, RULES, lambda c: rule(c, "fever")["when"].update(item="fevr"))
    edit(data_dir, RULES, lambda c: rule(c, "balance").update(tier="critical"))
    edit(data_dir, RULES_ES, lambda c: c["reasons"].pop("recurring"))
    message = load_error(data_dir)
    assert "unknown item 'fevr'" in message
    assert "unknown tier 'critical'" in message
    assert "missing text for rule 'recurring'" in message
