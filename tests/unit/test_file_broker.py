"""The embedded broker's message files: never seen half-written, never fatal when unreadable, never lost with
the consumer that took them. kombu's own filesystem transport runs the same tests and fails the first two
(celery/kombu#1551), which shows that they can fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from kombu import Connection

from intake.messaging.publishing import file_broker

OURS = file_broker.SCHEME
KOMBUS = pytest.param(
    "filesystem",
    marks=pytest.mark.xfail(strict=True, reason="kombu's own transport has the race (celery/kombu#1551)"),
)


def options(root: Path) -> dict[str, Any]:
    for sub in ("queue", "control", "unacked"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(root / "queue"),
        "data_folder_out": str(root / "queue"),
        "control_folder": str(root / "control"),
        "unacked_folder": str(root / "unacked"),
        "rejected_folder": str(root / "rejected"),
    }


@pytest.fixture
def open_channel(tmp_path: Path) -> Iterator[Any]:
    connections: list[Connection] = []

    def make(scheme: str = OURS) -> Any:
        connection = Connection(f"{scheme}://", transport_options=options(tmp_path / "broker"))
        connections.append(connection)
        return connection.default_channel

    yield make
    for connection in connections:
        connection.release()


def message(tag: str = "", body: Any = "payload") -> dict[str, Any]:
    delivery_info = {"exchange": "", "routing_key": "alerts"}
    return {"body": body, "properties": {"delivery_tag": tag or str(uuid.uuid4()), "delivery_info": delivery_info}}


def queue_file(folder: Path, queue: str = "alerts", earlier_ms: int = 0) -> Path:
    """A name as the transports give a message file: `<ms>_<uuid>.<queue>.msg` (ahead of the others)."""
    return folder / f"{round(time.monotonic() * 1000) - earlier_ms}_{uuid.uuid4()}.{queue}.msg"


class Reader:
    """Serialised in the middle of a put: looks at the queue folder then, as a consumer polling it would."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.unreadable: list[str] = []

    def __json__(self) -> str:
        for name in os.listdir(self.folder):
            if name.partition(".")[2] != "alerts.msg":
                continue  # not a name a consumer of `alerts` takes
            try:
                json.loads((self.folder / name).read_bytes())
            except ValueError:
                self.unreadable.append(name)
        return "read"


@pytest.mark.parametrize("scheme", [OURS, KOMBUS])
def test_a_message_file_is_never_visible_before_it_is_complete(open_channel: Any, scheme: str) -> None:
    channel = open_channel(scheme)
    reader = Reader(Path(channel.data_folder_out))
    channel._put("alerts", message(body={"reader": reader}))
    assert reader.unreadable == [], "a consumer could have taken a message file before it was written"
    assert channel._get("alerts")["body"] == {"reader": "read"}


@pytest.mark.parametrize("scheme", [OURS, KOMBUS])
def test_a_half_written_message_file_is_skipped_then_read_once_complete(open_channel: Any, scheme: str) -> None:
    channel = open_channel(scheme)
    whole = json.dumps(message(tag="tag-1")).encode()
    path = queue_file(Path(channel.data_folder_in))
    path.write_bytes(whole[:12])  # a writer of the old kind, half-way through
    with pytest.raises(Empty):
        channel._get("alerts")  # kombu's own: JSONDecodeError, the worker's "Unrecoverable error"
    path.write_bytes(whole)
    assert channel._get("alerts")["properties"]["delivery_tag"] == "tag-1"


def test_an_unreadable_file_is_set_aside_after_a_while(open_channel: Any) -> None:
    channel = open_channel()
    queue = Path(channel.data_folder_in)
    junk = queue_file(queue, earlier_ms=1000)
    junk.write_bytes(b"\x00not a message")
    old = time.time() - file_broker.UNPARSEABLE_GRACE - 1
    os.utime(junk, (old, old))
    channel._put("alerts", message(tag="good"))
    assert channel._get("alerts")["properties"]["delivery_tag"] == "good"
    assert not junk.exists()
    assert (queue.parent / "rejected" / junk.name).read_bytes() == b"\x00not a message"


def test_an_acknowledged_message_is_gone_and_a_rejected_one_requeued(open_channel: Any) -> None:
    channel = open_channel()
    queue = Path(channel.data_folder_in)
    channel._put("alerts", message(tag="acked"))
    taken = channel.basic_get("alerts")
    assert taken.delivery_tag == "acked"
    assert list(queue.iterdir()) == []
    (held,) = [p for p in (queue.parent / "unacked").rglob("*.msg")]
    channel.basic_ack("acked")
    assert not held.exists()

    channel._put("alerts", message(tag="rejected"))
    channel.basic_get("alerts")
    channel.basic_reject("rejected", requeue=True)
    assert channel._get("alerts")["properties"]["delivery_tag"] == "rejected"
    assert len(list((queue.parent / "unacked").rglob("*.msg"))) == 1  # taken again, the old copy gone


def test_messages_taken_by_a_consumer_that_was_killed_go_back_to_the_queue(open_channel: Any, tmp_path: Path) -> None:
    channel = open_channel()
    channel._put("alerts", message(tag="first"))
    channel._put("alerts", message(tag="second"))
    # A consumer in another process takes both and dies without acknowledging them (no clean-up at all).
    broker = str(tmp_path / "broker")
    script = textwrap.dedent(
        f"""
        import os
        from kombu import Connection
        from intake.messaging.publishing import file_broker
        root = {broker!r}
        channel = Connection("{OURS}://", transport_options={{
            "data_folder_in": root + "/queue", "data_folder_out": root + "/queue",
            "control_folder": root + "/control", "unacked_folder": root + "/unacked",
        }}).default_channel
        channel.basic_get("alerts")
        channel.basic_get("alerts")
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    queue = Path(channel.data_folder_in)
    assert list(queue.iterdir()) == []

    # The next consumer to start puts them back.
    consumer = open_channel()
    consumer.basic_consume("alerts", False, lambda _message: None, "tag")
    # (Their names keep their place in the queue; two written in the same millisecond have no order.)
    tags = {consumer._get("alerts")["properties"]["delivery_tag"] for _ in range(2)}
    assert tags == {"first", "second"}
    assert len(list((queue.parent / "unacked").glob("*.lock"))) == 1  # the dead consumer's folder is gone


def test_a_live_consumers_messages_stay_with_it(open_channel: Any) -> None:
    first = open_channel()
    first._put("alerts", message(tag="mine"))
    assert first.basic_get("alerts").delivery_tag == "mine"
    second = open_channel()
    second.basic_consume("alerts", False, lambda _message: None, "tag")
    with pytest.raises(Empty):
        second._get("alerts")
    # Even another process may not take them while the first lives: its folder's lock is held.
    moved = file_broker._OWN_FOLDERS.copy()
    file_broker._OWN_FOLDERS.clear()
    try:
        assert (
            file_broker.requeue_abandoned(Path(first.data_folder_in).parent / "unacked", Path(first.data_folder_in))
            == 0
        )
    finally:
        file_broker._OWN_FOLDERS.update(moved)


def test_what_a_writer_killed_mid_message_left_is_cleared_away(open_channel: Any) -> None:
    channel = open_channel()
    queue = Path(channel.data_folder_in)
    part = queue / f".{queue_file(queue).name}.part"
    part.write_bytes(b'{"body": ')
    old = time.time() - file_broker.STALE_PART_SECONDS - 1
    os.utime(part, (old, old))
    fresh = queue / f".{queue_file(queue).name}.part"
    fresh.write_bytes(b'{"body": ')  # perhaps still being written
    with pytest.raises(Empty):
        channel._get("alerts")
    assert not part.exists() and fresh.exists()
