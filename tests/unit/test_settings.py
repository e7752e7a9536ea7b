"""Settings come from the environment; a bad value names the variable."""

from __future__ import annotations

import pytest

from intake.settings import load_settings


def test_defaults_need_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "SMTP_HOST", "INTAKE_ENV", "JWT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.db.url.startswith("sqlite+aiosqlite:///")
    assert settings.broker.redis_url == "" and settings.smtp.host == ""
    assert settings.intake.rate_limit_per_minute == 10


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SMTP_PORT", "twenty-five"),
        ("SMTP_STARTTLS", "maybe"),
        ("INTAKE_ENV", "staging"),
        ("CELERY_VISIBILITY_TIMEOUT", "60"),
        ("INTAKE_RATE_LIMIT_PER_MINUTE", "-1"),
        ("PIPELINE_MAX_WAIT_SECONDS", "0"),
        ("PIPELINE_STALE_HEARTBEAT_SECONDS", "2"),
    ],
)
def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable):
        load_settings()


def test_production_needs_a_real_jwt_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTAKE_ENV", "production")
    monkeypatch.setenv("JWT_SECRET", "short")
    with pytest.raises(ValueError, match="JWT_SECRET"):
        load_settings()
