"""Real services for the worker tests, one of each per test module: an SMTP sink and a Redis server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.services import RedisServer, SmtpSink


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()
