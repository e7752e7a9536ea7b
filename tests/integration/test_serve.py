"""`intake serve` as a user runs it: the embedded default with no configuration, and clean logs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import pytest

from tests.conftest import emptied_after
from tests.factories import EMERGENCY_ANSWERS, submission
from tests.quiet import assert_sent_once_when_quiet
from tests.services import Served, serve

pytestmark = pytest.mark.slow


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Served]:
    # Nothing configured but the sweep's clock, so that the test may wait for one more sweep.
    yield from serve(tmp_path, {"SWEEP_INTERVAL_SECONDS": "1"})


def test_embedded_default_routes_end_to_end_into_eml_files(embedded: Served, tmp_path: Path) -> None:
    """No Redis, no SMTP, no settings: SQLite, the file broker, a worker and beat, .eml files."""
    assert (tmp_path / "data" / "intake.db").exists()
    questionnaire = httpx.get(f"{embedded.base_url}/api/intake/questionnaire?lang=es", timeout=5)
    assert questionnaire.status_code == 200
    payload = submission(EMERGENCY_ANSWERS, email="eml.patient@example.com")
    response = httpx.post(f"{embedded.base_url}/api/intake", json=payload, timeout=10)
    assert response.status_code == 201, response.text
    assert response.json()["route"] == "seek_care_now"

    emails = tmp_path / "data" / "emails"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(emails.glob("*.eml"))) < 2:
        time.sleep(0.2)
    data = tmp_path / "data"
    sent = assert_sent_once_when_quiet(
        database_url=f"sqlite+aiosqlite:///{data / 'intake.db'}",
        emails=emails,
        broker=data / "broker" / "queue",
        worker_logs=embedded.logs,
    )
    assert len(sent) == 2, embedded.logs()[-3000:]
    recipients = sorted(str(e.message["To"]) for e in sent)
    assert "eml.patient@example.com" in recipients
    assert any("frontdesk@" in r for r in recipients)  # the staff alert


@pytest.fixture
async def emptied_pg(pg_url: str) -> AsyncIterator[str]:
    """PostgreSQL for a served process, emptied afterwards as the other PostgreSQL tests leave it."""
    async for _ in emptied_after(pg_url):
        yield pg_url


def test_logs_carry_no_patient_data(tmp_path: Path, emptied_pg: str) -> None:
    production = {
        "DATABASE_URL": emptied_pg,
        "INTAKE_ENV": "production",
        "JWT_SECRET": "x" * 40,
        "PUBLIC_BASE_URL": "https://intake.clinic.example",
    }
    for served in serve(tmp_path, production):
        payload = submission(
            {**EMERGENCY_ANSWERS, "goals": "Carry my granddaughter Zuleika again"},
            email="Marisol.Quintanilla-Test@example.org",
            phone="561-555-0187",
            first_name="Marisol",
            last_name="Quintanilla",
            zip="33487",
        )
        assert httpx.post(f"{served.base_url}/api/intake", json=payload, timeout=10).status_code == 201
        bad = {**payload, "contact": {**payload["contact"], "email": "Marisol.Quintanilla@@bad"}}
        assert httpx.post(f"{served.base_url}/api/intake", json=bad, timeout=10).status_code == 422
        search = httpx.get(f"{served.base_url}/api/intake/questionnaire?lang=en&q=Quintanilla", timeout=5)
        assert search.status_code == 200
        time.sleep(0.5)
        logs = served.logs()
    assert '"event":"http.request"' in logs  # JSON lines in production
    assert "intake.screened" in logs
    for secret in (
        "Marisol",
        "Quintanilla",
        "marisol",
        "quintanilla",
        "5550187",
        "555-0187",
        "Zuleika",
        "33487",
    ):
        assert secret not in logs, f"{secret!r} reached the logs"


def test_unknown_rule_set_version_stops_start_up(tmp_path: Path) -> None:
    env = {**os.environ, "INTAKE_DATA_DIR": str(tmp_path), "RULE_SET_VERSION": "1999-01.9"}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", "from intake.app import create_app; create_app()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "1999-01.9" in result.stderr


def test_embedded_default_sends_due_follow_ups(tmp_path: Path) -> None:
    """SQLite, the file broker, the worker and the scheduler beside it: a due reminder becomes an .eml file."""
    import sqlite3

    for served in serve(tmp_path, {"SENDING_WINDOW": "00:00-24:00", "FOLLOW_UP_CLAIM_SECONDS": "1"}):
        payload = submission(email="reminded@example.com", phone=None)
        assert httpx.post(f"{served.base_url}/api/intake", json=payload, timeout=10).status_code == 201
        emails = tmp_path / "data" / "emails"
        _wait_for_files(emails, 1, served)
        with sqlite3.connect(tmp_path / "data" / "intake.db") as connection:
            pending = connection.execute("SELECT count(*) FROM follow_ups WHERE status = 'pending'").fetchone()[0]
            assert pending == 3
            # The movable clock: the first reminder falls due now instead of tomorrow.
            connection.execute(
                "UPDATE follow_ups SET due_at = '2000-01-01 00:00:00.000000' WHERE kind = 'booking_reminder_1'"
            )
        _wait_for_files(emails, 2, served)
        subjects = sorted(
            str(message_from_bytes(p.read_bytes(), policy=policy.default)["Subject"]) for p in emails.glob("*.eml")
        )
        assert any("waiting" in s for s in subjects), subjects


def _wait_for_files(folder: Path, count: int, served: Served) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(folder.glob("*.eml"))) < count:
        time.sleep(0.2)
    assert len(list(folder.glob("*.eml"))) >= count, served.logs()[-3000:]


@pytest.mark.parametrize(
    ("command", "real"),
    [
        (["serve", "--no-worker"], {"DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/test"}),
        (["worker"], {"REDIS_URL": "redis://127.0.0.1:6379/0"}),
        (["beat"], {"INTAKE_ENV": "production", "JWT_SECRET": "x" * 40}),
    ],
)
def test_off_the_embedded_default_start_up_needs_public_base_url(
    tmp_path: Path, command: list[str], real: dict[str, str]
) -> None:
    """With the worker apart from the API, a default base URL would send people to a port where nothing listens."""
    env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "INTAKE_ENV", "PUBLIC_BASE_URL"}
    }
    env.update({"INTAKE_DATA_DIR": str(tmp_path), **real})
    result = subprocess.run(
        [sys.executable, "-m", "intake.cli", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "PUBLIC_BASE_URL must be set" in result.stderr
