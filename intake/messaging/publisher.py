"""Hands outbox publications to the broker after commit; a failure is logged and left to the sweep."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import structlog

from intake.messaging.outbox import Publication

log = structlog.get_logger(__name__)


class Broker(Protocol):
    def send(self, publication: Publication) -> None: ...


class Publisher:
    def __init__(self, broker: Broker):
        self._broker = broker

    def publish(self, publications: Iterable[Publication]) -> int:
        """Publish each; returns how many went out. Never raises: the database keeps what did not."""
        sent = 0
        for publication in publications:
            try:
                self._broker.send(publication)
                sent += 1
            except Exception as exc:
                log.warning(
                    "publish.failed",
                    task=publication.task,
                    ref=str(publication.ref),
                    error=type(exc).__name__,
                )
        return sent
