"""A versioned rule set: scoring, reasons, advice and disclaimer for one version of the rules."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from intake.screening.advice import RuleSetText, build_advice, build_reasons
from intake.screening.model import Advice, Assessment, Reason
from intake.screening.rules import PerPoint, Rule
from intake.screening.scoring import assess
from intake.vocabulary import LANGUAGES, Language


class RuleSet:
    """One version of the triage rules with its texts; every screening records `version`."""

    def __init__(
        self,
        version: str,
        rules: tuple[Rule, ...],
        per_point: tuple[PerPoint, ...],
        texts: Mapping[str, RuleSetText],
    ) -> None:
        self.version = version
        self.rules = rules
        self._per_point = per_point
        self._by_code: Mapping[str, Rule] = MappingProxyType({rule.code: rule for rule in rules})
        self._texts = MappingProxyType(dict(texts))

    def __repr__(self) -> str:
        return f"RuleSet({self.version!r}, {len(self.rules)} rules)"

    def assess(self, answers: Mapping[str, Any]) -> Assessment:
        """Tier, route, score and fired rules of answers already checked by Questionnaire.validate."""
        return assess(self.rules, self._per_point, answers)

    def reasons(self, assessment: Assessment, lang: Language) -> list[Reason]:
        return build_reasons(self._text(lang), self._by_code, assessment)

    def advice(self, assessment: Assessment, lang: Language, *, clinic_phone: str, booking_url: str) -> Advice:
        return build_advice(
            self._text(lang),
            self._by_code,
            assessment,
            clinic_phone=clinic_phone,
            booking_url=booking_url,
        )

    def disclaimer(self, lang: Language) -> str:
        return self._text(lang).disclaimer

    def _text(self, lang: Language) -> RuleSetText:
        if lang not in self._texts:
            raise ValueError(f"unsupported language {lang!r}; use one of {', '.join(LANGUAGES)}")
        return self._texts[lang]
