"""Hands outbox publications to the broker after commit; a failure is logged and left to the sweep."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Protocol

import structlog
from anyio import to_thread

from intake.messaging.publishing.publication import Publication

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


class BatchSender(Protocol):
    async def send(self, publications: Sequence[Publication]) -> None: ...

    async def aclose(self) -> None: ...


class InThread:
    """A synchronous broker (Celery's, for the embedded filesystem transport) run in a worker thread."""

    def __init__(self, broker: Broker):
        self._publisher = Publisher(broker)

    async def send(self, publications: Sequence[Publication]) -> None:
        await to_thread.run_sync(self._publisher.publish, publications)

    async def aclose(self) -> None:
        return None


class BackgroundPublisher:
    """The API's hand-off to the broker: a request never waits on it.

    `publish_soon` is called once the rows are committed. The publications wait in memory until
    the one flushing task sends everything pending in one batch; requests that commit meanwhile
    join the next batch. A failure is logged and left to the sweep, which publishes the outbox
    rows and deliveries again (every task is idempotent).
    """

    def __init__(self, sender: BatchSender):
        self._sender = sender
        self._pending: list[Publication] = []
        self._flushing: asyncio.Task[None] | None = None

    def publish_soon(self, publications: Iterable[Publication]) -> None:
        self._pending.extend(publications)
        if self._pending and self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._sender.send(batch)
                except Exception as exc:
                    log.warning("publish.failed", count=len(batch), error=type(exc).__name__)
        finally:
            self._flushing = None

    async def drain(self) -> None:
        """Returns once everything handed over so far was sent, or failed and was logged."""
        while self._flushing is not None:
            await asyncio.shield(self._flushing)

    async def aclose(self) -> None:
        """Sends what is pending (at shutdown), then closes the broker connection."""
        await self.drain()
        await self._sender.aclose()
