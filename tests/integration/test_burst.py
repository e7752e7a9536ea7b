"""A burst of screens on the embedded default (SQLite, with the worker and beat writing too): every
person stored, every answer 201, no writer failing with "database is locked"."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from bench.burst import burst, emails_expected
from bench.support import summary
from tests.conftest import make_settings
from tests.factories import submission
from tests.in_loop import served_in_this_loop
from tests.services import serve

pytestmark = pytest.mark.slow

COUNT = 200


def test_two_hundred_screens_at_once_are_all_stored(tmp_path: Path) -> None:
    for served in serve(tmp_path, {"INTAKE_RATE_LIMIT_PER_MINUTE": "0", "LOG_LEVEL": "INFO"}):
        result = asyncio.run(burst(served.base_url, COUNT))
        latency = summary(result.latencies_ms)
        print(f"\nburst of {COUNT}: {result.by_status}; p50 {latency['p50']} ms, p99 {latency['p99']} ms")
        assert result.by_status == {201: COUNT}, served.logs()[-3000:]

        # The worker writes every screening's deliveries meanwhile: wait for the last of its emails.
        emails = tmp_path / "data" / "emails"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and len(list(emails.glob("*.eml"))) < emails_expected(COUNT):
            time.sleep(0.5)
        logs = served.logs()
    with sqlite3.connect(tmp_path / "data" / "intake.db") as connection:
        leads = connection.execute("SELECT count(*) FROM leads WHERE email LIKE 'burst.%'").fetchone()[0]
        screenings = connection.execute("SELECT count(*) FROM screenings").fetchone()[0]
    assert (leads, screenings) == (COUNT, COUNT)
    assert len(list(emails.glob("*.eml"))) == emails_expected(COUNT), logs[-3000:]
    # Error lines name the exception class, never its message: "database is locked" is an OperationalError.
    assert "database is locked" not in logs and "OperationalError" not in logs, logs[-3000:]
    assert "intake.retry_after_busy" not in logs  # no writer even waited past the busy timeout


async def test_a_writer_waits_out_another_process_holding_the_database(sqlite_template: Path, tmp_path: Path) -> None:
    """Another process (the worker, beat) keeps SQLite's write lock longer than the old 10 s busy timeout:
    the API's writers wait for it, and nobody is turned away."""
    database = tmp_path / "intake.db"
    shutil.copyfile(sqlite_template, database)
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA journal_mode=WAL")  # as the service's first connection left it
    settings = make_settings(f"sqlite+aiosqlite:///{database}", tmp_path / "data")
    held, release = threading.Event(), threading.Event()

    def other_process_writing() -> None:
        connection = sqlite3.connect(database, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        held.set()
        release.wait(30)
        connection.execute("COMMIT")
        connection.close()

    holder = threading.Thread(target=other_process_writing)
    holder.start()
    try:
        assert held.wait(10)
        async with served_in_this_loop(settings) as (client, in_flight):
            pending = [
                asyncio.ensure_future(
                    client.post("/api/intake", json=submission(email=f"waiting{n}@example.com", phone=None))
                )
                for n in range(10)
            ]
            await asyncio.sleep(11)  # past the busy timeout there was
            assert in_flight.now == 10 and not any(p.done() for p in pending)  # all waiting, none turned away
            release.set()
            answers = await asyncio.gather(*pending)
    finally:
        release.set()
        holder.join()
    assert [a.status_code for a in answers] == [201] * 10, answers[0].text
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM screenings").fetchone()[0] == 10
