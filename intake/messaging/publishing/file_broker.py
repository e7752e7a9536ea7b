"""The embedded broker: kombu's filesystem transport without its race (celery/kombu#1551), as `intakefs://`.

kombu creates a message file under its final name and then writes it, so a reader can take it while it is
still empty and the worker dies with `JSONDecodeError`. Here:

- a message is written under a name no reader takes (`.<name>.part`) and renamed once complete (a consumer
  deletes what a writer that died in the middle left there);
- a reader skips a file it cannot parse: it stays in the queue for `UNPARSEABLE_GRACE` seconds after its
  last write (a writer of the old kind may still be at it), then moves to `rejected/`, with a log line;
- a message a consumer has taken waits in that consumer's own folder under `unacked/` until it is
  acknowledged. The folder's lock file is held (flock) while the consumer lives; a consumer puts back in the
  queue what dead consumers left there (when it starts, then every few seconds), so a killed worker loses
  nothing it had taken.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
import uuid
from pathlib import Path
from queue import Empty
from typing import Any

import structlog
from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

log = structlog.get_logger(__name__)

SCHEME = "intakefs"
UNPARSEABLE_GRACE = 10.0
"""Seconds after its last write that a message file which does not parse is left in the queue."""
RECOVERY_INTERVAL = 5.0
"""Seconds between a consumer's looks for messages that dead consumers had taken."""
STALE_PART_SECONDS = 60.0
"""A message file still being written after this long belongs to a writer that died: it is deleted."""

_OWN_FOLDERS: set[Path] = set()
"""This process's consumer folders: never taken for a dead consumer's, whatever a lock says."""


class Channel(filesystem.Channel):
    """kombu's filesystem channel with atomic writes, tolerant reads and acknowledged removal."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._taken: dict[str, Path] = {}
        """Delivery tag → the message's file in this channel's unacked folder, until ack or reject."""
        self._no_ack: set[str] = set()
        self._folder: Path | None = None
        self._folder_owner = 0
        self._lock_fd: int | None = None
        self._next_recovery = 0.0

    # ----------------------------------------------------------------- writing

    # kombu's two base classes name the message differently (`message`, `payload`): no signature suits both.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        data = str_to_bytes(dumps(payload))
        name = f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        folder = Path(self.data_folder_out)
        partial = folder / f".{name}.part"
        try:
            with partial.open("xb") as file:
                file.write(data)
            # Visible under its queue's name only now, complete: a rename is atomic within a folder.
            partial.rename(folder / name)
        except OSError as exc:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise ChannelError(f"Cannot add a message file to {folder}") from exc

    # ----------------------------------------------------------------- reading

    def _get(self, queue: str, timeout: Any = None) -> Any:
        wanted = f"{queue}.msg"
        folder = Path(self.data_folder_in)
        if time.monotonic() >= self._next_recovery:
            # At once when a consumer starts, then now and then: a killed consumer's pool processes may still
            # hold its lock for a moment.
            self._next_recovery = time.monotonic() + RECOVERY_INTERVAL
            requeue_abandoned(self._unacked_root(), folder)
            remove_stale_parts(folder)
        for filename in sorted(os.listdir(folder)):
            if filename.partition(".")[2] != wanted:
                continue
            path = folder / filename
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                continue  # another consumer took it
            try:
                payload = loads(bytes_to_str(raw))
            except ValueError:  # JSONDecodeError, UnicodeDecodeError
                payload = None
            if not isinstance(payload, dict):
                self._unreadable(path)
                continue
            if queue in self._no_ack:
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                return payload
            taken = self._consumer_folder() / filename
            try:
                path.rename(taken)
            except FileNotFoundError:
                continue  # another consumer took it between our read and our rename
            tag = payload.get("properties", {}).get("delivery_tag")
            if isinstance(tag, str):
                self._taken[tag] = taken
            else:
                taken.unlink()  # nothing could ever acknowledge it
            return payload
        raise Empty()

    def _unreadable(self, path: Path) -> None:
        try:
            written = path.stat().st_mtime
        except FileNotFoundError:
            return
        if time.time() - written < UNPARSEABLE_GRACE:
            return  # perhaps still being written: look again on the next poll
        rejected = Path(self.transport_options.get("rejected_folder") or Path(self.data_folder_in).parent / "rejected")
        rejected.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.rename(rejected / path.name)
            log.warning("broker.message_rejected", file=path.name, reason="not a readable message")

    # ----------------------------------------------------------------- acknowledging

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        if no_ack:
            self._no_ack.add(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: Any) -> Any:
        message = super().basic_get(queue, no_ack, **kwargs)
        if message is not None and no_ack:
            self._forget(message.delivery_tag)
        return message

    def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple)
        self._forget(delivery_tag)

    def basic_reject(self, delivery_tag: str, requeue: bool = False) -> None:
        super().basic_reject(delivery_tag, requeue)  # a requeue writes a new file first (`_restore`)
        self._forget(delivery_tag)

    def _restore(self, message: Any) -> None:
        super()._restore(message)
        self._forget(message.delivery_tag)

    def _forget(self, delivery_tag: str) -> None:
        path = self._taken.pop(delivery_tag, None)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def close(self) -> None:
        super().close()  # puts back what was taken and not acknowledged
        if self._lock_fd is not None and self._folder_owner == os.getpid():
            folder = self._folder
            if folder is not None and not any(folder.iterdir()):
                _remove_folder(folder)
            os.close(self._lock_fd)
            self._lock_fd = None

    # ----------------------------------------------------------------- this consumer's folder

    def _unacked_root(self) -> Path:
        configured = self.transport_options.get("unacked_folder")
        return Path(configured) if configured else Path(self.data_folder_in).parent / "unacked"

    def _consumer_folder(self) -> Path:
        if self._folder is None or self._folder_owner != os.getpid():
            self._folder, self._lock_fd = _own_folder(self._unacked_root())
            self._folder_owner = os.getpid()
        return self._folder


def _own_folder(root: Path) -> tuple[Path, int]:
    """A folder for the messages this consumer has taken, with its lock file held for as long as we live.

    The lock file gets its public name only once it is locked, so no one takes a live consumer's folder."""
    root.mkdir(parents=True, exist_ok=True)
    name = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    pending = root / f".{name}.lock"
    fd = os.open(pending, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    folder = root / name
    folder.mkdir()
    os.rename(pending, root / f"{name}.lock")
    _OWN_FOLDERS.add(folder)
    return folder, fd


def requeue_abandoned(root: Path, queue_folder: Path) -> int:
    """Put back in the queue the messages of consumers that died before acknowledging them; returns how many."""
    if not root.is_dir():
        return 0
    moved = 0
    for lock in sorted(root.glob("[!.]*.lock")):
        folder = root / lock.name.removesuffix(".lock")
        if folder in _OWN_FOLDERS:
            continue
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its consumer is alive
            if folder.is_dir():
                for message in sorted(folder.iterdir()):
                    # Its original name: it goes back to where it stood in the queue.
                    with contextlib.suppress(FileNotFoundError):
                        message.rename(queue_folder / message.name)
                        moved += 1
                _remove_folder(folder)
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
        finally:
            os.close(fd)
    if moved:
        log.warning("broker.requeued_abandoned", messages=moved)
    return moved


def remove_stale_parts(folder: Path, older_than: float = STALE_PART_SECONDS) -> None:
    """Delete what writers killed in the middle of a message left (`.<name>.part`): no reader ever takes it."""
    cutoff = time.time() - older_than
    for part in folder.glob(".*.part"):
        with contextlib.suppress(FileNotFoundError):
            if part.stat().st_mtime < cutoff:
                part.unlink()
                log.warning("broker.partial_message_removed", file=part.name)


def _remove_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (folder.parent / f"{folder.name}.lock").unlink()
    _OWN_FOLDERS.discard(folder)


class Transport(filesystem.Transport):
    """Registered as `intakefs://`; the transport options are kombu's filesystem ones, plus `unacked_folder`
    and `rejected_folder` (default: beside the queue folder)."""

    Channel = Channel
    driver_name = SCHEME


TRANSPORT_ALIASES.setdefault(SCHEME, f"{__name__}:Transport")
