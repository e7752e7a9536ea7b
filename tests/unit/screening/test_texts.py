"""Reasons, advice, disclaimer and questionnaire wording: complete in en and es, and right for the tier."""

from __future__ import annotations

from typing import Any

import pytest

from intake.screening import Action, Assessment, Catalog, Route, RuleSet, Tier
from intake.vocabulary import LANGUAGES
from tests.unit.screening.policy import BOOKING_URL, CLINIC_PHONE, RULES, baseline


def assessed(catalog: Catalog, rule_set: RuleSet, **changes: Any) -> Assessment:
    answers, errors = catalog.questionnaire.validate(baseline(**changes))
    assert errors == []
    return rule_set.assess(answers)


def advise(rule_set: RuleSet, assessment: Assessment, lang: str = "en") -> Any:
    return rule_set.advice(assessment, lang, clinic_phone=CLINIC_PHONE, booking_url=BOOKING_URL)  # type: ignore[arg-type]


def every_code(code: str) -> Assessment:
    tier = Tier(RULES[code])
    return Assessment(tier=tier, route=Route.SEEK_CARE_NOW, score=50, rule_codes=(code,))


# -- complete in both languages, and really translated ------------------------------------------


def test_languages() -> None:
    assert LANGUAGES == ("en", "es")


@pytest.mark.parametrize("code", sorted(RULES))
def test_every_reason_is_in_english_and_spanish(rule_set: RuleSet, code: str) -> None:
    english = rule_set.reasons(every_code(code), "en")
    spanish = rule_set.reasons(every_code(code), "es")
    assert [r.code for r in english] == [r.code for r in spanish] == [code]
    assert english[0].tier == spanish[0].tier == Tier(RULES[code])
    assert english[0].text.strip()
    assert spanish[0].text.strip()
    assert english[0].text != spanish[0].text


def test_bladder_bowel_reason_says_what_it_means(rule_set: RuleSet) -> None:
    [reason] = rule_set.reasons(every_code("bladder_bowel"), "en")
    assert reason.text == "New trouble controlling your bladder or bowels can mean a nerve emergency."


ADVICE_CASES: dict[str, dict[str, Any]] = {
    "emergency": {"bladder_bowel": True},
    "urgent": {"fever": True},
    "soon": {"recurring": True},
    "routine": {},
    "pregnancy": {"pregnant": True, "labor_signs": True},
    "pregnancy+emergency": {"pregnant": True, "labor_signs": True, "chest_abdomen": True},
}


@pytest.mark.parametrize("case", sorted(ADVICE_CASES))
def test_every_advice_is_in_english_and_spanish(catalog: Catalog, rule_set: RuleSet, case: str) -> None:
    result = assessed(catalog, rule_set, **ADVICE_CASES[case])
    english, spanish = advise(rule_set, result, "en"), advise(rule_set, result, "es")
    assert english.title != spanish.title
    assert english.body != spanish.body
    assert [a.kind for a in english.actions] == [a.kind for a in spanish.actions]
    assert [a.href for a in english.actions] == [a.href for a in spanish.actions]
    for ours, theirs in zip(english.actions, spanish.actions, strict=True):
        assert ours.label
        assert theirs.label
        assert ours.label != theirs.label
    assert english.actions, "every advice offers something to do"


def test_disclaimer_in_both_languages(rule_set: RuleSet) -> None:
    assert rule_set.disclaimer("en").startswith("This is safety advice, not a diagnosis")
    assert "no un diagnóstico" in rule_set.disclaimer("es")


def test_questionnaire_wording_is_complete_and_translated(catalog: Catalog) -> None:
    questionnaire = catalog.questionnaire
    en, es = questionnaire.texts("en"), questionnaire.texts("es")
    assert en.title != es.title
    assert en.description != es.description
    for section in questionnaire.sections:
        assert en.sections[section.link_id] != es.sections[section.link_id]
    for link_id, item in questionnaire.items.items():
        ours, theirs = en.items[link_id], es.items[link_id]
        assert ours.text != theirs.text, link_id
        assert (ours.help is None) == (theirs.help is None), link_id
        if ours.help is not None:
            assert ours.help != theirs.help, link_id
        assert set(ours.options) == set(theirs.options) == set(item.options), link_id
        for code in item.options:
            assert ours.options[code] != theirs.options[code], f"{link_id}.{code}"


def test_unsupported_language_is_refused(catalog: Catalog, rule_set: RuleSet) -> None:
    with pytest.raises(ValueError, match="fr"):
        rule_set.disclaimer("fr")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fr"):
        catalog.questionnaire.as_fhir("fr", rule_set.version)  # type: ignore[arg-type]


def test_reason_of_another_rule_set_is_refused(rule_set: RuleSet) -> None:
    stranger = Assessment(tier=Tier.SOON, route=Route.BOOK_CONSULTATION, score=30, rule_codes=("no_such_rule",))
    with pytest.raises(KeyError, match="no_such_rule"):
        rule_set.reasons(stranger, "en")


# -- the advice fits the tier ---------------------------------------------------------------------


def test_emergency_advice_calls_911(catalog: Catalog, rule_set: RuleSet) -> None:
    result = assessed(catalog, rule_set, saddle_numbness=True)
    advice = advise(rule_set, result)
    assert result.route == Route.SEEK_CARE_NOW
    assert "911" in advice.title
    assert "emergency department" in advice.title
    assert advice.actions[0] == Action(kind="call", label="Call 911", href="tel:911")
    assert "Llame al 911" in advise(rule_set, result, "es").title


def test_urgent_advice_sends_to_a_doctor_today_and_offers_the_clinic(catalog: Catalog, rule_set: RuleSet) -> None:
    advice = advise(rule_set, assessed(catalog, rule_set, weight_loss=True))
    assert "doctor today" in advice.title
    assert "24 hours" in advice.body
    assert "gladly" in advice.body
    assert [(a.kind, a.href) for a in advice.actions] == [("call_clinic", f"tel:{CLINIC_PHONE}")]


def test_clinic_phone_href_has_no_spaces(catalog: Catalog, rule_set: RuleSet) -> None:
    result = assessed(catalog, rule_set, fever=True)
    advice = rule_set.advice(result, "en", clinic_phone="+1 561 555 0100", booking_url=BOOKING_URL)
    assert advice.actions[0].href == "tel:+15615550100"


def test_soon_advice_books_and_promises_a_call_within_a_business_day(catalog: Catalog, rule_set: RuleSet) -> None:
    advice = advise(rule_set, assessed(catalog, rule_set, spread="one_leg"))
    assert "free consultation" in advice.title
    assert "one business day" in advice.body
    assert "earliest" in advice.body
    assert advice.actions[0] == Action(kind="book", label="Book a free consultation", href=BOOKING_URL)
    assert "ice" in advice.body.lower()


def test_routine_advice_books_and_gives_self_care(catalog: Catalog, rule_set: RuleSet) -> None:
    advice = advise(rule_set, assessed(catalog, rule_set))
    assert "free consultation" in advice.title
    body = advice.body.lower()
    for tip in ("active", "ice", "heat", "stretch", "water", "potassium", "magnesium", "empower fitness"):
        assert tip in body, tip
    assert [(a.kind, a.href) for a in advice.actions] == [("book", BOOKING_URL)]
    spanish = advise(rule_set, assessed(catalog, rule_set), "es").body.lower()
    for tip in ("hielo", "calor", "estiramientos", "agua", "potasio", "magnesio"):
        assert tip in spanish, tip


def test_pregnancy_with_labor_signs_has_its_own_advice(catalog: Catalog, rule_set: RuleSet) -> None:
    result = assessed(catalog, rule_set, pregnant=True, labor_signs=True)
    advice = advise(rule_set, result)
    assert (result.tier, result.route) == (Tier.URGENT, Route.SEEK_CARE_NOW)
    assert "obstetric provider" in advice.title
    assert "labor and delivery" in advice.title
    assert "doctor today" not in advice.title
    assert "obstetra" in advise(rule_set, result, "es").title


def test_pregnancy_advice_leads_over_other_urgent_signs(catalog: Catalog, rule_set: RuleSet) -> None:
    advice = advise(rule_set, assessed(catalog, rule_set, pregnant=True, labor_signs=True, fever=True))
    assert "obstetric provider" in advice.title


def test_emergency_with_labor_signs_calls_911_and_mentions_the_obstetric_provider(
    catalog: Catalog, rule_set: RuleSet
) -> None:
    result = assessed(catalog, rule_set, pregnant=True, labor_signs=True, bladder_bowel=True)
    assert result.tier == Tier.EMERGENCY
    assert result.rule_codes == ("bladder_bowel", "pregnancy_labor_signs")
    advice = advise(rule_set, result)
    assert "911" in advice.title
    assert advice.actions[0].href == "tel:911"
    assert "obstetric provider" in advice.body
    assert "obstetra" in advise(rule_set, result, "es").body


def test_pregnant_without_labor_signs_gets_the_tier_advice(catalog: Catalog, rule_set: RuleSet) -> None:
    advice = advise(rule_set, assessed(catalog, rule_set, pregnant=True, fever=True))
    assert "doctor today" in advice.title
    assert "obstetric" not in advice.body


def test_advice_for_every_tier_differs(catalog: Catalog, rule_set: RuleSet) -> None:
    titles = {advise(rule_set, assessed(catalog, rule_set, **ADVICE_CASES[case])).title for case in ADVICE_CASES}
    assert len(titles) == 5  # pregnancy+emergency shares the emergency title
