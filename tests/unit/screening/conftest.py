"""The screening catalog as shipped, loaded once for the screening tests."""

from __future__ import annotations

import pytest

from intake.screening import Catalog, RuleSet, load_catalog


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="session")
def rule_set(catalog: Catalog) -> RuleSet:
    return catalog.get("2026-11.1")
