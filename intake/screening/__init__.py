"""The back-pain symptom screen: questionnaire, versioned triage rules, scoring and advice texts."""

from intake.screening.catalog import Catalog, load_catalog
from intake.screening.model import (
    Action,
    Advice,
    Assessment,
    Reason,
    Route,
    RuleSetError,
    Tier,
)
from intake.screening.questionnaire import Questionnaire
from intake.screening.ruleset import RuleSet

__all__ = [
    "Action",
    "Advice",
    "Assessment",
    "Catalog",
    "Questionnaire",
    "Reason",
    "Route",
    "RuleSet",
    "RuleSetError",
    "Tier",
    "load_catalog",
]
