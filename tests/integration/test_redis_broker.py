"""The API writes Celery task messages into Redis itself: they must be what Celery writes."""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis as redis_client

from intake.messaging import kinds
from intake.messaging.publishing.celery_app import CeleryBroker, create_celery
from intake.messaging.publishing.publication import Publication
from intake.messaging.publishing.publisher import BackgroundPublisher
from intake.messaging.publishing.redis_broker import RedisQueues, task_message
from tests.conftest import make_settings
from tests.services import RedisServer

pytestmark = pytest.mark.slow  # a redis-server process of its own

# Differ per message or per process by design.
_PER_MESSAGE = {"id", "root_id", "correlation_id", "delivery_tag", "reply_to", "origin"}


def _shape(message: dict[str, Any]) -> dict[str, Any]:
    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ("*" if k in _PER_MESSAGE else scrub(v)) for k, v in value.items()}
        return value

    shaped: dict[str, Any] = scrub(message)
    shaped["body"] = json.loads(base64.b64decode(message["body"]))
    return shaped


def _stored(client: redis_client.Redis, queue: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange(queue, 0, -1)]


@pytest.fixture
def client(redis: RedisServer) -> redis_client.Redis:
    client = redis_client.Redis.from_url(redis.url)
    client.flushdb()
    return client


@pytest.mark.parametrize(
    ("task", "queue"),
    [(kinds.TASK_ROUTE_SCREENING, kinds.ALERTS_QUEUE), (kinds.TASK_SEND_DELIVERY, kinds.DEFAULT_QUEUE)],
)
async def test_messages_are_the_ones_celery_writes(
    redis: RedisServer, client: redis_client.Redis, tmp_path: Path, task: str, queue: str
) -> None:
    publication = Publication(task, uuid.uuid4(), queue)
    settings = make_settings("sqlite+aiosqlite:///unused.db", tmp_path, broker={"redis_url": redis.url})
    CeleryBroker(create_celery(settings, fail_fast=True)).send(publication)
    (theirs,) = _stored(client, queue)
    client.delete(queue)

    queues = RedisQueues(redis.url)
    await queues.send([publication])
    await queues.aclose()
    (raw,) = client.lrange(queue, 0, -1)
    ours = json.loads(raw)

    assert _shape(ours) == _shape(theirs)
    assert list(ours["headers"]) == list(theirs["headers"])  # the same headers, none left out or added
    assert ours["headers"]["task"] == task
    assert ours["headers"]["id"] == ours["headers"]["root_id"] == ours["properties"]["correlation_id"]
    assert ours["headers"]["id"] != ours["properties"]["delivery_tag"]
    assert ours["headers"]["origin"] == f"{os.getpid()}@{socket.gethostname()}"
    assert ours["properties"]["reply_to"]
    assert b"\\u0000" not in raw  # no placeholder of the template left in
    assert json.loads(base64.b64decode(ours["body"]))[0] == [str(publication.ref)]


def test_the_message_differs_per_message_only_where_celery_says() -> None:
    one, two = (
        json.loads(task_message(kinds.TASK_ROUTE_SCREENING, ["ref"], kinds.ALERTS_QUEUE, origin="o", reply_to="r"))
        for _ in range(2)
    )
    assert one["headers"]["id"] != two["headers"]["id"]
    assert one["properties"]["delivery_tag"] != two["properties"]["delivery_tag"]
    assert _shape(one) == _shape(two)


async def test_a_batch_lands_on_each_publications_queue(redis: RedisServer, client: redis_client.Redis) -> None:
    alerts = [Publication(kinds.TASK_SEND_DELIVERY, uuid.uuid4(), kinds.ALERTS_QUEUE) for _ in range(3)]
    routine = [Publication(kinds.TASK_ROUTE_SCREENING, uuid.uuid4(), kinds.DEFAULT_QUEUE) for _ in range(2)]
    publisher = BackgroundPublisher(RedisQueues(redis.url))
    publisher.publish_soon(alerts[:1])
    publisher.publish_soon(alerts[1:] + routine)
    await publisher.aclose()

    def refs(queue: str) -> set[str]:
        return {json.loads(base64.b64decode(m["body"]))[0][0] for m in _stored(client, queue)}

    assert refs(kinds.ALERTS_QUEUE) == {str(p.ref) for p in alerts}
    assert refs(kinds.DEFAULT_QUEUE) == {str(p.ref) for p in routine}
    assert {m["headers"]["task"] for m in _stored(client, kinds.ALERTS_QUEUE)} == {kinds.TASK_SEND_DELIVERY}


async def test_a_broker_that_was_down_is_used_again_once_it_is_back() -> None:
    server = RedisServer()  # not started yet: its port refuses connections
    publisher = BackgroundPublisher(RedisQueues(server.url, timeout=0.5))
    lost, kept = (Publication(kinds.TASK_ROUTE_SCREENING, uuid.uuid4(), kinds.ALERTS_QUEUE) for _ in range(2))
    publisher.publish_soon([lost])
    await publisher.drain()  # the flush failed and was logged; the outbox row stays for the sweep
    server.start()
    try:
        publisher.publish_soon([kept])
        await publisher.aclose()
        (stored,) = _stored(redis_client.Redis.from_url(server.url), kinds.ALERTS_QUEUE)
        assert json.loads(base64.b64decode(stored["body"]))[0] == [str(kept.ref)]
    finally:
        server.stop()
