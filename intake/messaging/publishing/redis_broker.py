"""Celery task messages put on Redis straight from the API's event loop.

Celery's own `send_task` is synchronous: the API ran it in a thread, and with kombu's producer
and channel machinery it was the largest single cost of a submission (bench/intake.py's profile).
A task message on kombu's Redis transport is one JSON document pushed onto the list named after
the queue (priority 0, default exchange), so the API writes that document itself, in Celery's
message protocol 2, and pushes a batch of them in one round trip.

`tests/integration/test_redis_broker.py` holds this to what `Celery.send_task` writes, and a
real worker consumes what it writes in the routing tests.
"""

from __future__ import annotations

import base64
import os
import socket
import uuid
from collections import defaultdict
from collections.abc import Sequence

import msgspec
import redis.asyncio as aioredis

from intake.messaging.publishing.publication import Publication

# The options a task carries in protocol 2 (no callbacks, no chain, no chord).
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_encode = msgspec.json.Encoder().encode


def task_message(task: str, args: Sequence[str], queue: str, *, origin: str, reply_to: str) -> bytes:
    """One task message as kombu's Redis transport stores it (Celery protocol 2, JSON, base64 body)."""
    task_id = str(uuid.uuid4())
    body = _encode([list(args), {}, _EMBED])
    return _encode(
        {
            "body": base64.b64encode(body).decode("ascii"),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {
                "lang": "py",
                "task": task,
                "id": task_id,
                "shadow": None,
                "eta": None,
                "expires": None,
                "group": None,
                "group_index": None,
                "retries": 0,
                "timelimit": [None, None],
                "root_id": task_id,
                "parent_id": None,
                "argsrepr": repr(list(args)),
                "kwargsrepr": "{}",
                "origin": origin,
                "ignore_result": None,
                "replaced_task_nesting": 0,
                "stamped_headers": None,
                "stamps": {},
            },
            "properties": {
                "correlation_id": task_id,
                "reply_to": reply_to,
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
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
