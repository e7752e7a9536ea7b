"""Every setting of the service, read from the environment once (one dataclass per concern)."""

from __future__ import annotations

import ipaddress
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


def _env_float(name: str, default: float) -> float:
    raw = _env(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def _env_int(name: str, default: int) -> int:
    raw = _env(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None


def _env_positive(name: str, default: float) -> float:
    value = _env_float(name, default)
    if value <= 0:
        raise ValueError(f"{name} must be more than 0, got {value}")
    return value


def _env_non_negative(name: str, default: int) -> int:
    value = _env_int(name, default)
    if value < 0:
        raise ValueError(f"{name} must be 0 or more, got {value}")
    return value


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
    timezone: str


@dataclass(frozen=True, slots=True)
class IntakeSettings:
    max_body_bytes: int
    rule_set_version: str
    """Empty: the newest rule set scores new screenings."""
    idempotency_ttl_hours: int
    rate_limit_per_minute: int = 10
    """Screens one client address may submit per minute (then 429); 0: no limit."""
    trusted_proxies: tuple[str, ...] = ()
    """FORWARDED_ALLOW_IPS: the peers whose X-Forwarded-For names the client (for uvicorn and the rate limit).
    None by default."""


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    redis_url: str
    """Empty: the embedded broker (message files under the data folder, `intake.messaging.publishing.file_broker`)."""
    visibility_timeout: int
    """Seconds before Redis hands an unacknowledged task to another worker; above the longest
    task plus its retry delays."""
    worker_concurrency: int


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    """Empty: emails are written as .eml files under the data folder."""
    port: int
    username: str = field(repr=False)
    password: str = field(repr=False)
    starttls: bool
    timeout: float
    from_address: str


@dataclass(frozen=True, slots=True)
class AlertSettings:
    staff_emails: tuple[str, ...]
    webhook_url: str
    webhook_secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class MessagingSettings:
    sweep_interval: float
    """Seconds between beat's sweeps for stuck outbox rows and deliveries."""
    republish_after: float
    """An outbox row or queued delivery not done after this many seconds is published again."""
    sending_lease: float
    """A delivery claimed by a worker that died is taken over after this many seconds."""
    retry_base: float
    retry_max_delay: float
    max_attempts: int


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    heartbeat_interval: float
    """Seconds between a worker's (and the scheduler's) heartbeats in the database."""
    stale_heartbeat: float
    """`/pipeline` answers 503 when no worker (or no scheduler) has shown a heartbeat for this long."""
    max_wait: float
    """`/pipeline` answers 503 when an outbox row waits to be routed, or a seek-care-now email or staff alert
    waits to be sent, longer than this."""


@dataclass(frozen=True, slots=True)
class AuthSettings:
    jwt_secret: str = field(repr=False)
    """Empty in development: a secret is made once and kept in the data folder."""
    access_token_minutes: int
    lockout_threshold: int
    lockout_minutes: int
    export_max_rows: int
    login_rate_limit_per_minute: int = 20
    """Sign-in attempts one client address may make per minute (then 429); 0: no limit."""
    login_account_rate_limit_per_minute: int = 10
    """Sign-in attempts per minute for one account (email), from any address (then 429); 0: no limit."""


@dataclass(frozen=True, slots=True)
class BookingSettings:
    addresses: dict[str, str]
    """Clinic address per location (boca_raton, pompano_beach)."""
    in_home_zips: frozenset[str]
    """ZIP codes of the concierge (in-home) service area."""
    horizon_days: int
    """How far ahead patients see free slots."""
    min_notice_hours: int
    """No slot starts sooner than this."""
    soon_priority_hours: int
    """The earliest hours of slots are offered to `soon` leads only (routine leads see later ones)."""
    change_cutoff_hours: int
    """Cancel and reschedule links work until this many hours before the consultation."""
    link_days: int
    """How long a booking link stays valid."""


@dataclass(frozen=True, slots=True)
class FollowUpSettings:
    sending_window: str
    """Clinic-time hours follow-ups may go out, e.g. 08:00-20:00."""
    claim_interval: float
    """Seconds between beat's claims of due follow-ups."""
    claim_batch: int


@dataclass(frozen=True, slots=True)
class Settings:
    app: AppSettings
    db: DatabaseSettings
    clinic: ClinicSettings
    intake: IntakeSettings = field(repr=False)
    broker: BrokerSettings = field(repr=False)
    smtp: SmtpSettings = field(repr=False)
    alerts: AlertSettings = field(repr=False)
    messaging: MessagingSettings = field(repr=False)
    auth: AuthSettings = field(repr=False)
    booking: BookingSettings = field(repr=False)
    followups: FollowUpSettings = field(repr=False)
    pipeline: PipelineSettings = field(repr=False)


def load_settings() -> Settings:
    """Build the settings from the environment; raises ValueError naming a bad variable."""
    settings = _read()
    longest = settings.messaging.retry_max_delay + 2 * settings.smtp.timeout
    if settings.broker.visibility_timeout <= longest:
        # Redis would hand a task that is waiting out a retry delay to a second worker.
        raise ValueError(
            f"CELERY_VISIBILITY_TIMEOUT ({settings.broker.visibility_timeout}s) must exceed the longest retry "
            f"delay plus the SMTP timeout twice ({longest:.0f}s)"
        )
    if settings.pipeline.stale_heartbeat <= settings.pipeline.heartbeat_interval:
        # Every worker would look dead between two of its own heartbeats.
        raise ValueError(
            f"PIPELINE_STALE_HEARTBEAT_SECONDS ({settings.pipeline.stale_heartbeat:g}s) must exceed "
            f"WORKER_HEARTBEAT_SECONDS ({settings.pipeline.heartbeat_interval:g}s)"
        )
    return settings


def _read() -> Settings:
    env = _env("INTAKE_ENV", "development")
    if env not in {"development", "production"}:
        raise ValueError(f"INTAKE_ENV must be development or production, got {env!r}")
    data_dir = Path(_env("INTAKE_DATA_DIR", ".intake")).resolve()
    log_format = _env("LOG_FORMAT", "json" if env == "production" else "console")
    if log_format not in {"json", "console"}:
        raise ValueError(f"LOG_FORMAT must be json or console, got {log_format!r}")
    public_base_url = _public_base_url()
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
            pool_size=_env_int("DATABASE_POOL_SIZE", 20),
            echo=_env_bool("DATABASE_ECHO", False),
        ),
        clinic=ClinicSettings(
            name=_env("CLINIC_NAME", "Empower Fitness"),
            phone=_env("CLINIC_PHONE", "+15615550100"),
            address=_env("CLINIC_ADDRESS", "Boca Raton, FL 33431, USA"),
            booking_url=_env("CLINIC_BOOKING_URL", f"{public_base_url}/book"),
            privacy_notice_version=_env("PRIVACY_NOTICE_VERSION", "2026-11-01"),
            timezone=_env("CLINIC_TIMEZONE", "America/New_York"),
        ),
        intake=IntakeSettings(
            max_body_bytes=_env_int("INTAKE_MAX_BODY_BYTES", 64 * 1024),
            rule_set_version=_env("RULE_SET_VERSION"),
            idempotency_ttl_hours=_env_int("IDEMPOTENCY_TTL_HOURS", 24),
            rate_limit_per_minute=_env_non_negative("INTAKE_RATE_LIMIT_PER_MINUTE", 10),
            trusted_proxies=_env_addresses("FORWARDED_ALLOW_IPS"),
        ),
        broker=BrokerSettings(
            redis_url=_env("REDIS_URL"),
            visibility_timeout=_env_int("CELERY_VISIBILITY_TIMEOUT", 900),
            worker_concurrency=_env_int("WORKER_CONCURRENCY", 4),
        ),
        smtp=SmtpSettings(
            host=_env("SMTP_HOST"),
            port=_env_int("SMTP_PORT", 587),
            username=_env("SMTP_USERNAME"),
            password=_env("SMTP_PASSWORD"),
            starttls=_env_bool("SMTP_STARTTLS", True),
            timeout=_env_float("SMTP_TIMEOUT", 10.0),
            from_address=_env("SMTP_FROM", "Empower Fitness <care@empowerfitness.example>"),
        ),
        alerts=AlertSettings(
            staff_emails=tuple(
                e.strip()
                for e in _env("STAFF_ALERT_EMAILS", "frontdesk@empowerfitness.example").split(",")
                if e.strip()
            ),
            webhook_url=_env("STAFF_ALERT_WEBHOOK_URL"),
            webhook_secret=_env("STAFF_ALERT_WEBHOOK_SECRET"),
        ),
        messaging=MessagingSettings(
            sweep_interval=_env_float("SWEEP_INTERVAL_SECONDS", 30.0),
            republish_after=_env_float("REPUBLISH_AFTER_SECONDS", 60.0),
            sending_lease=_env_float("SENDING_LEASE_SECONDS", 120.0),
            retry_base=_env_float("EMAIL_RETRY_BASE_SECONDS", 10.0),
            retry_max_delay=_env_float("EMAIL_RETRY_MAX_DELAY_SECONDS", 120.0),
            max_attempts=_env_int("EMAIL_MAX_ATTEMPTS", 6),
        ),
        auth=AuthSettings(
            jwt_secret=_jwt_secret(env),
            access_token_minutes=_env_int("ACCESS_TOKEN_MINUTES", 30),
            lockout_threshold=_env_int("LOGIN_LOCKOUT_THRESHOLD", 10),
            lockout_minutes=_env_int("LOGIN_LOCKOUT_MINUTES", 15),
            export_max_rows=_env_int("EXPORT_MAX_ROWS", 100_000),
            login_rate_limit_per_minute=_env_non_negative("LOGIN_RATE_LIMIT_PER_MINUTE", 20),
            login_account_rate_limit_per_minute=_env_non_negative("LOGIN_ACCOUNT_RATE_LIMIT_PER_MINUTE", 10),
        ),
        booking=BookingSettings(
            addresses={
                "boca_raton": _env("BOCA_RATON_ADDRESS", "Boca Raton, FL 33431"),
                "pompano_beach": _env("POMPANO_BEACH_ADDRESS", "Pompano Beach, FL 33062"),
            },
            in_home_zips=frozenset(
                z.strip()
                for z in _env(
                    "IN_HOME_ZIPS",
                    "33431,33432,33433,33434,33486,33487,33496,33498,33060,33062,33064,33069,33441,33442",
                ).split(",")
                if z.strip()
            ),
            horizon_days=_env_int("BOOKING_HORIZON_DAYS", 14),
            min_notice_hours=_env_int("BOOKING_MIN_NOTICE_HOURS", 2),
            soon_priority_hours=_env_int("BOOKING_SOON_PRIORITY_HOURS", 24),
            change_cutoff_hours=_env_int("BOOKING_CHANGE_CUTOFF_HOURS", 12),
            link_days=_env_int("BOOKING_LINK_DAYS", 30),
        ),
        followups=FollowUpSettings(
            sending_window=_env("SENDING_WINDOW", "08:00-20:00"),
            claim_interval=_env_float("FOLLOW_UP_CLAIM_SECONDS", 10.0),
            claim_batch=_env_int("FOLLOW_UP_CLAIM_BATCH", 500),
        ),
        pipeline=PipelineSettings(
            heartbeat_interval=_env_positive("WORKER_HEARTBEAT_SECONDS", 5.0),
            stale_heartbeat=_env_positive("PIPELINE_STALE_HEARTBEAT_SECONDS", 30.0),
            max_wait=_env_positive("PIPELINE_MAX_WAIT_SECONDS", 60.0),
        ),
    )


def _env_addresses(name: str) -> tuple[str, ...]:
    """Comma-separated IP addresses or networks, or `*`."""
    entries = tuple(e.strip() for e in _env(name).split(",") if e.strip())
    for entry in entries:
        if entry == "*":
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"{name} must list IP addresses or networks (or *), got {entry!r}") from None
    return entries


def _jwt_secret(env: str) -> str:
    secret = _env("JWT_SECRET")
    if env == "production" and len(secret) < 32:
        raise ValueError("JWT_SECRET must be set to at least 32 characters in production")
    return secret


def is_embedded_default() -> bool:
    """Nothing points at real services: SQLite (in the data folder, or a file DATABASE_URL names), the
    filesystem broker (no REDIS_URL), and not production. There, the API, the worker and beat run together
    (`intake serve`), and links may point at the address it serves on."""
    database_url = _env("DATABASE_URL")
    return (
        (not database_url or database_url.startswith("sqlite"))
        and not _env("REDIS_URL")
        and _env("INTAKE_ENV", "development") != "production"
    )


def _public_base_url() -> str:
    url = _env("PUBLIC_BASE_URL").rstrip("/")
    if not url:
        if not is_embedded_default():
            # The worker builds the links in emails: a default would point at a port of its own machine.
            raise ValueError(
                "PUBLIC_BASE_URL must be set when DATABASE_URL or REDIS_URL points at real services or "
                "INTAKE_ENV=production: the address patients and staff reach this service at "
                "(e.g. https://intake.example.com), where every link in emails and alerts points"
            )
        return "http://127.0.0.1:8000"
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"PUBLIC_BASE_URL must start with http:// or https://, got {url!r}")
    return url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
