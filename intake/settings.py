"""Every setting of the service, read from the environment once (one dataclass per concern)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name)
    if not raw:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


def _env_int(name: str, default: int) -> int:
    raw = _env(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None


@dataclass(frozen=True, slots=True)
class AppSettings:
    env: str
    """`development` or `production`; production logs JSON."""
    data_dir: Path
    public_base_url: str
    log_level: str
    log_format: str
    """`json` or `console`."""


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str
    pool_size: int
    echo: bool

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


@dataclass(frozen=True, slots=True)
class ClinicSettings:
    name: str
    phone: str
    address: str
    booking_url: str
    privacy_notice_version: str


@dataclass(frozen=True, slots=True)
class IntakeSettings:
    max_body_bytes: int
    rule_set_version: str
    """Empty: the newest rule set scores new screenings."""
    idempotency_ttl_hours: int


@dataclass(frozen=True, slots=True)
class Settings:
    app: AppSettings
    db: DatabaseSettings
    clinic: ClinicSettings
    intake: IntakeSettings = field(repr=False)


def load_settings() -> Settings:
    """Build the settings from the environment; raises ValueError naming a bad variable."""
    env = _env("INTAKE_ENV", "development")
    if env not in {"development", "production"}:
        raise ValueError(f"INTAKE_ENV must be development or production, got {env!r}")
    data_dir = Path(_env("INTAKE_DATA_DIR", ".intake")).resolve()
    log_format = _env("LOG_FORMAT", "json" if env == "production" else "console")
    if log_format not in {"json", "console"}:
        raise ValueError(f"LOG_FORMAT must be json or console, got {log_format!r}")
    public_base_url = _env("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    return Settings(
        app=AppSettings(
            env=env,
            data_dir=data_dir,
            public_base_url=public_base_url,
            log_level=_env("LOG_LEVEL", "INFO").upper(),
            log_format=log_format,
        ),
        db=DatabaseSettings(
            url=_env("DATABASE_URL") or f"sqlite+aiosqlite:///{data_dir / 'intake.db'}",
            pool_size=_env_int("DATABASE_POOL_SIZE", 10),
            echo=_env_bool("DATABASE_ECHO", False),
        ),
        clinic=ClinicSettings(
            name=_env("CLINIC_NAME", "Empower Fitness"),
            phone=_env("CLINIC_PHONE", "+15615550100"),
            address=_env("CLINIC_ADDRESS", "Boca Raton, FL 33431, USA"),
            booking_url=_env("CLINIC_BOOKING_URL", f"{public_base_url}/book"),
            privacy_notice_version=_env("PRIVACY_NOTICE_VERSION", "2026-11-01"),
        ),
        intake=IntakeSettings(
            max_body_bytes=_env_int("INTAKE_MAX_BODY_BYTES", 64 * 1024),
            rule_set_version=_env("RULE_SET_VERSION"),
            idempotency_ttl_hours=_env_int("IDEMPOTENCY_TTL_HOURS", 24),
        ),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
