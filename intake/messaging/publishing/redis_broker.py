"""Celery task messages put on Redis straight from the API's event loop.

Celery's own `send_task` is synchronous: the API ran it in a thread, and with kombu's producer
and channel machinery it was the largest single cost of a submission (bench/intake.py's profile).
A task message on kombu's Redis transport is one JSON document pushed onto the list named after
the queue (priority 0, default exchange), so the API writes that document itself, in Celery's
message protocol 2, and pushes a batch of them in one round trip.

Building each message through Celery (`app.amqp.as_task_v2`, kombu's serializer and envelope)
costs about 47 µs against 8 µs by hand (timeit), so Celery and kombu build one message once, with
placeholders where the task id, name, origin, reply queue, queue, delivery tag and body go, and
each message is that encoded template with its own values put in.
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

import msgspec
import redis.asyncio as aioredis
from celery import Celery
from kombu import serialization
from kombu.entity import PERSISTENT_DELIVERY_MODE
from kombu.transport.redis import Channel

from intake.messaging.publishing.publication import Publication

_encode = msgspec.json.Encoder().encode

# Placeholders: given to Celery's builder once, then replaced in the encoded message by each
# message's own values.
_SLOTS = ("id", "task", "origin", "reply_to", "argsrepr", "queue", "delivery_tag", "body")
_ID, _TASK, _ORIGIN, _REPLY_TO, _ARGSREPR, _QUEUE, _DELIVERY_TAG, _BODY = (f"\0{name}\0" for name in _SLOTS)


class _Template:
    """A task message as Celery and kombu make it, encoded once, with placeholders for what differs."""

    def __init__(self) -> None:
        # A bare app: it never connects, only builds. ignore_result=None is what send_task passes
        # for a task it does not know (the API publishes by name).
        amqp = Celery("intake", set_as_current=False).amqp
        headers, properties, body, _ = amqp.as_task_v2(
            _ID, _TASK, [], {}, origin=_ORIGIN, reply_to=_REPLY_TO, argsrepr=_ARGSREPR, ignore_result=None
        )
        self.embed = body[2]  # protocol 2's options: callbacks, errbacks, chain, chord
        content_type, content_encoding, _ = serialization.dumps(list(body), serializer="json")  # type: ignore[no-untyped-call]
        # What kombu adds on the way: Producer.publish the delivery mode (Celery's queues are
        # persistent), Channel.prepare_message the priority, and the Redis channel the body's
        # encoding, a delivery tag, and the default exchange with the queue as routing key.
        properties.update(
            delivery_mode=PERSISTENT_DELIVERY_MODE,
            delivery_info={"exchange": "", "routing_key": _QUEUE},
            priority=Channel.default_priority,
            body_encoding=Channel.body_encoding,
            delivery_tag=_DELIVERY_TAG,
        )
        message = {
            "body": _BODY,
            "content-encoding": content_encoding,
            "content-type": content_type,
            "headers": headers,
            "properties": properties,
        }
        # The encoded message as a %-format, each placeholder a named field (bytes keys).
        encoded = _encode(message).replace(b"%", b"%%")
        for name in _SLOTS:
            slot = _encode(f"\0{name}\0")
            if slot not in encoded:
                raise RuntimeError(f"Celery's task message changed shape (no {name}): see task_message")
            encoded = encoded.replace(slot, b"%(" + name.encode() + b")s")
        if Channel.body_encoding != "base64":
            raise RuntimeError(f"kombu now encodes Redis message bodies as {Channel.body_encoding}: see task_message")
        self.format = encoded


@functools.cache
def _template() -> _Template:
    return _Template()


def task_message(task: str, args: Sequence[str], queue: str, *, origin: str, reply_to: str) -> bytes:
    """One task message as kombu's Redis transport stores it (Celery protocol 2, JSON, base64 body)."""
    t = _template()
    return t.format % {
        b"id": _encode(str(uuid.uuid4())),
        b"task": _encode(task),
        b"origin": _encode(origin),
        b"reply_to": _encode(reply_to),
        b"argsrepr": _encode(repr(list(args))),
        b"queue": _encode(queue),
        b"delivery_tag": _encode(str(uuid.uuid4())),
        b"body": b'"' + base64.b64encode(_encode([list(args), {}, t.embed])) + b'"',  # base64: nothing to escape
    }


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
