"""The one page patients open: the unsubscribe link, in a real (headless) Chromium."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import pytest

from tests.factories import submission
from tests.services import serve

pytestmark = pytest.mark.slow


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def headless(url: str, *extra: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                *extra,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_the_unsubscribe_link_in_a_spanish_email_works_in_a_browser(tmp_path: Path) -> None:
    for served in serve(tmp_path, {}):
        payload = submission(language="es", email="carmen.v@example.com", phone=None)
        assert httpx.post(f"{served.base_url}/api/intake", json=payload, timeout=10).status_code == 201
        emails = tmp_path / "data" / "emails"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(emails.glob("*.eml")):
            time.sleep(0.2)
        (eml,) = emails.glob("*.eml")
        link = str(message_from_bytes(eml.read_bytes(), policy=policy.default)["List-Unsubscribe"]).strip("<>")
        assert link.startswith(served.base_url)

        # Opening the link (as a mail scanner does, too) only asks, in the person's language.
        dom = headless(link, "--dump-dom")
        assert "Darme de baja" in dom and 'method="post"' in dom
        headless(link, f"--screenshot={tmp_path / 'confirm.png'}", "--window-size=420,700")
        assert (tmp_path / "confirm.png").stat().st_size > 1000
        with sqlite3.connect(tmp_path / "data" / "intake.db") as connection:
            assert connection.execute("SELECT unsubscribed_at FROM leads").fetchone()[0] is None

        # The button: the form's POST, as the browser sends it.
        action = re.search(r'<form method="post" action="([^"]+)"', dom)
        assert action is not None and link.endswith(action.group(1))
        pressed = httpx.post(
            served.base_url + action.group(1),
            headers={"Accept": "text/html", "Content-Type": "application/x-www-form-urlencoded"},
            timeout=10,
        )
        assert pressed.status_code == 200 and "Se ha dado de baja" in pressed.text
        assert "Se ha dado de baja" in headless(link, "--dump-dom")  # the link now says so

        with sqlite3.connect(tmp_path / "data" / "intake.db") as connection:
            unsubscribed, statuses = connection.execute(
                "SELECT unsubscribed_at, (SELECT group_concat(DISTINCT status) FROM follow_ups) FROM leads"
            ).fetchone()
        assert unsubscribed is not None
        assert statuses == "cancelled"
