"""`intake serve` as a user runs it: the embedded default with no configuration, and clean logs."""

from __future__ import annotations

import os
import socket
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
from tests.services import wait_for

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    def __init__(self, process: subprocess.Popen[bytes], base_url: str, log_path: Path):
        self.process, self.base_url, self.log_path = process, base_url, log_path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


def _serve(tmp_path: Path, extra_env: dict[str, str]) -> Iterator[Served]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SMTP_HOST"}}
    env.update({"INTAKE_DATA_DIR": str(tmp_path / "data"), "LOG_LEVEL": "DEBUG", **extra_env})
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "intake.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        served = Served(process, f"http://127.0.0.1:{port}", log_path)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"intake serve exited early:\n{served.logs()}")
            try:
                if httpx.get(f"{served.base_url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            process.kill()
            raise AssertionError(f"intake serve did not become ready:\n{served.logs()}")
        try:
            yield served
        finally:
            children = _children_of(process.pid)
            process.terminate()
            process.wait(timeout=30)
            # The worker that `intake serve` started stops with it: none is left running.
            wait_for(lambda: not any(_alive(pid) for pid in children), 30, "the worker to stop with intake serve")


def _children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Served]:
    yield from _serve(tmp_path, {})


def test_embedded_default_routes_end_to_end_into_eml_files(embedded: Served, tmp_path: Path) -> None:
    """No Redis, no SMTP, no settings: SQLite, the filesystem broker, a worker and beat, .eml files."""
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
    messages = [message_from_bytes(p.read_bytes(), policy=policy.default) for p in emails.glob("*.eml")]
    assert len(messages) == 2, embedded.logs()[-3000:]
    recipients = sorted(str(m["To"]) for m in messages)
    assert "eml.patient@example.com" in recipients
    assert any("frontdesk@" in r for r in recipients)  # the staff alert


@pytest.fixture
async def emptied_pg(pg_url: str) -> AsyncIterator[str]:
    """PostgreSQL for a served process, emptied afterwards as the other PostgreSQL tests leave it."""
    async for _ in emptied_after(pg_url):
        yield pg_url


def test_logs_carry_no_patient_data(tmp_path: Path, emptied_pg: str) -> None:
    production = {"DATABASE_URL": emptied_pg, "INTAKE_ENV": "production", "JWT_SECRET": "x" * 40}
    for served in _serve(tmp_path, production):
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
    """SQLite, the filesystem broker and beat inside the worker: a due reminder becomes an .eml file."""
    import sqlite3

    for served in _serve(tmp_path, {"SENDING_WINDOW": "00:00-24:00", "FOLLOW_UP_CLAIM_SECONDS": "1"}):
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
