"""Celery task messages put on Redis straight from the API's event loop.

Celery's own `send_task` is synchronous: the API ran it in a thread, and with kombu's producer
and channel machinery it was the largest single cost of a submission (bench/intake.py's profile).
A task message on kombu's Redis transport is one JSON document pushed onto the list named after
the queue (priority 0, default exchange), so the API writes that document itself, in Celery's
message protocol 2, and pushes a batch of them in one round trip.

Building each message through Celery (`app.amqp.as_task_v2`, kombu's serializer and envelope)
costs about 47 µs against 8 µs here (timeit, `task_message`), so Celery builds one message with
placeholders, once: its header names, order and constant values, and which fields carry the task
id, name, origin and reply queue; each message only fills those in.
`tests/integration/test_redis_broker.py` holds the result to what `Celery.send_task` writes, for
the Celery and kombu versions pyproject.toml allows, and a real worker consumes what it writes in
the routing tests.
"""

from __future__ import annotations

import base64
import functools
import os
import socket
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
from celery import Celery
from kombu import serialization
from kombu.entity import PERSISTENT_DELIVERY_MODE
from kombu.transport.redis import Channel

from intake.messaging.outbox import Publication

_encode = msgspec.json.Encoder().encode

# Placeholders Celery's builder is given once, to find where each message's own values go.
_ID, _TASK, _ORIGIN, _REPLY_TO, _ARGSREPR = (f"\0{name}\0" for name in ("id", "task", "origin", "reply_to", "argsrepr"))


class _Template:
    """The parts of a task message that are the same in every message, as Celery and kombu make them."""

    def __init__(self) -> None:
        # A bare app: it never connects, only builds. ignore_result=None is what send_task passes
        # for a task it does not know (the API publishes by name).
        amqp = Celery("intake", set_as_current=False).amqp
        headers, properties, body, _ = amqp.as_task_v2(
            _ID, _TASK, [], {}, origin=_ORIGIN, reply_to=_REPLY_TO, argsrepr=_ARGSREPR, ignore_result=None
        )
        self.headers: dict[str, Any] = headers
        self.header_slots = [(k, v) for k, v in headers.items() if isinstance(v, str) and v in _SLOTS]
        self.properties: dict[str, Any] = properties
        self.property_slots = [(k, v) for k, v in properties.items() if isinstance(v, str) and v in _SLOTS]
        self.embed = body[2]  # protocol 2's options: callbacks, errbacks, chain, chord
        content_type, content_encoding, _ = serialization.dumps(list(body), serializer="json")  # type: ignore[no-untyped-call]
        self.envelope = {"content-encoding": content_encoding, "content-type": content_type}
        # What kombu's Producer.publish and the Redis channel add for the default exchange.
        self.delivery = {
            "delivery_mode": PERSISTENT_DELIVERY_MODE,
            "priority": Channel.default_priority,
            "body_encoding": Channel.body_encoding,
        }
        missing = {_ID, _TASK, _ORIGIN, _REPLY_TO, _ARGSREPR} - {v for _, v in self.header_slots + self.property_slots}
        if missing or Channel.body_encoding != "base64":
            raise RuntimeError(f"Celery's task message changed shape ({sorted(missing)}): see task_message")


_SLOTS = frozenset((_ID, _TASK, _ORIGIN, _REPLY_TO, _ARGSREPR))


@functools.cache
def _template() -> _Template:
    return _Template()


def task_message(task: str, args: Sequence[str], queue: str, *, origin: str, reply_to: str) -> bytes:
    """One task message as kombu's Redis transport stores it (Celery protocol 2, JSON, base64 body)."""
    template = _template()
    task_id = str(uuid.uuid4())
    values = {_ID: task_id, _TASK: task, _ORIGIN: origin, _REPLY_TO: reply_to, _ARGSREPR: repr(list(args))}
    headers = template.headers.copy()
    for key, slot in template.header_slots:
        headers[key] = values[slot]
    properties = template.properties.copy()
    for key, slot in template.property_slots:
        properties[key] = values[slot]
    properties.update(template.delivery)
    properties["delivery_info"] = {"exchange": "", "routing_key": queue}
    properties["delivery_tag"] = str(uuid.uuid4())
    body = _encode([list(args), {}, template.embed])
    return _encode(
        {
            "body": base64.b64encode(body).decode("ascii"),
            **template.envelope,
            "headers": headers,
            "properties": properties,
        }
    )


class RedisQueues:
    """Pushes publications onto the Celery queues in Redis: one pipelined round trip per batch."""

    def __init__(self, url: str, *, timeout: float = 2.0):
        # Short timeouts and no retries: a broker that is down must not hold publications for long;
        # the outbox keeps them and the sweep publishes them again.
        self._client = aioredis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout, retry_on_timeout=False
        )
        self._origin = f"{os.getpid()}@{socket.gethostname()}"
        self._reply_to = str(uuid.uuid4())

    async def send(self, publications: Sequence[Publication]) -> None:
        by_queue: dict[str, list[bytes]] = defaultdict(list)
        for p in publications:
            by_queue[p.queue].append(
                task_message(p.task, [str(p.ref)], p.queue, origin=self._origin, reply_to=self._reply_to)
            )
        async with self._client.pipeline(transaction=False) as pipe:
            for queue, messages in by_queue.items():
                pipe.lpush(queue, *messages)
            await pipe.execute()

    async def aclose(self) -> None:
        await self._client.aclose()


__all__ = ["RedisQueues", "task_message"]
