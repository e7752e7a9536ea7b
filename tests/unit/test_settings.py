"""Settings come from the environment; a bad value names the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from intake.settings import load_settings


def test_defaults_need_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "SMTP_HOST", "INTAKE_ENV", "JWT_SECRET", "PUBLIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.db.url.startswith("sqlite+aiosqlite:///")
    assert settings.broker.redis_url == "" and settings.smtp.host == ""
    assert settings.intake.rate_limit_per_minute == 10
    assert settings.app.public_base_url == "http://127.0.0.1:8000"
    assert (settings.auth.login_rate_limit_per_minute, settings.auth.login_account_rate_limit_per_minute) == (20, 10)


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
        ("LOGIN_RATE_LIMIT_PER_MINUTE", "-1"),
        ("LOGIN_ACCOUNT_RATE_LIMIT_PER_MINUTE", "lots"),
        ("PUBLIC_BASE_URL", "intake.example.com"),
    ],
)
def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable):
        load_settings()


def test_production_needs_a_real_jwt_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTAKE_ENV", "production")
    monkeypatch.setenv("JWT_SECRET", "short")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://intake.example.com")
    with pytest.raises(ValueError, match="JWT_SECRET"):
        load_settings()


@pytest.mark.parametrize(
    "real",
    [
        {"DATABASE_URL": "postgresql+asyncpg://intake@db.internal/intake"},
        {"REDIS_URL": "redis://redis.internal:6379/0"},
        {"INTAKE_ENV": "production", "JWT_SECRET": "x" * 40},
    ],
)
def test_public_base_url_is_required_off_the_embedded_default(
    monkeypatch: pytest.MonkeyPatch, real: dict[str, str]
) -> None:
    """The worker builds the links in emails; a default would point at a port where nothing listens."""
    for name in ("DATABASE_URL", "REDIS_URL", "INTAKE_ENV", "JWT_SECRET", "PUBLIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in real.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match="PUBLIC_BASE_URL must be set"):
        load_settings()
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://intake.example.com/")
    assert load_settings().app.public_base_url == "https://intake.example.com"


def test_a_sqlite_database_url_is_still_the_embedded_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("REDIS_URL", "INTAKE_ENV", "PUBLIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}")
    assert load_settings().app.public_base_url == "http://127.0.0.1:8000"
