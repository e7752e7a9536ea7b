""" "Sent once, never twice", proven by waiting until nothing is left that could send, not by a fixed sleep.

`assert_sent_once_when_quiet` waits until the system is quiet, waits for one more beat sweep to pass
while it stays quiet, and then counts what the sinks received: each email once per recipient, by its
Message-ID and by what it is about, and each staff webhook once per lead.
"""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.pool import NullPool

from intake.db.base import utcnow
from intake.db.models import Delivery, FollowUp, OutboxMessage
from tests.services import RedisServer, SmtpSink, WebhookSink

QUEUES = ("alerts", "intake")
"""The Celery queues (intake.messaging.kinds.ALERTS_QUEUE and DEFAULT_QUEUE)."""
UNFINISHED = ("queued", "sending", "failed")
"""Delivery states that will still send (`failed` will retry); `sent`, `dead` and `cancelled` are final."""
SWEEP_DONE = re.compile(r"Task intake\.sweep\[[^\]]+\] succeeded")


@dataclass(frozen=True)
class Email:
    recipients: tuple[str, ...]
    message: EmailMessage


def assert_sent_once_when_quiet(
    *,
    database_url: str,
    emails: SmtpSink | Path,
    broker: RedisServer | Path,
    worker_logs: Callable[[], str] | None,
    sweep_interval: float = 1.0,
    webhook: WebhookSink | None = None,
    timeout: float = 90.0,
) -> list[Email]:
    """Wait until quiet, then one more sweep, then assert every email and webhook arrived exactly once.

    Quiet: no delivery `queued`, `sending` or `failed` (a retry to come); every outbox row done
    (`done_at` set: published and routed); no `pending` follow-up already due (beat would claim it);
    the broker's queues empty (Redis: LLEN of `alerts` and `intake`; the filesystem broker: no file in
    its queue folder). A message a worker has reserved is no longer queued, but what it would do shows
    in the database (its outbox row not done, its delivery `queued`, its retry `failed`). Messages a
    killed worker had reserved stay in Redis's `unacked` until the visibility timeout (30 s in tests)
    has passed and a worker starts: the helper does not wait for those. Then, while it stays quiet and nothing more arrives, two more sweeps
    must finish in the worker's log (so one ran wholly after quiet was seen) and at least one
    `sweep_interval` must pass; without `worker_logs`, three intervals. If anything moved, it starts
    over. A duplicate arriving later than that would need something a quiet system does not have.

    Then each email is counted once per recipient by its Message-ID, and by what it is about (the
    kind, lead, screening and booking of its delivery row, found by X-Intake-Delivery), and each
    webhook by its lead and tier: every count must be exactly one. `emails` is an SMTP sink, or the
    folder the file transport writes `<delivery>.eml` to (a resend of the same delivery overwrites
    its file there, so only distinct deliveries about the same thing are caught). Returns the emails.
    """
    engine = create_engine(_sync_url(database_url), poolclass=NullPool)
    try:
        deadline = time.monotonic() + timeout
        while True:
            _wait(lambda: _busy(engine, broker) is None, deadline, lambda: _busy(engine, broker))
            seen_at = time.monotonic()
            snapshot = _snapshot(emails, webhook)
            sweeps = _sweeps(worker_logs)

            def another_sweep_passed(seen_at: float = seen_at, sweeps: int = sweeps) -> bool:
                waited = time.monotonic() - seen_at
                if worker_logs is None:
                    return waited >= 3 * sweep_interval
                return waited >= sweep_interval and _sweeps(worker_logs) >= sweeps + 2

            _wait(another_sweep_passed, deadline, lambda: "a sweep to pass in the worker's log")
            if _busy(engine, broker) is None and _snapshot(emails, webhook) == snapshot:
                break
    finally:
        engine.dispose()
    return _assert_each_once(database_url, emails, webhook)


def _sync_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql+psycopg://").replace("sqlite+aiosqlite://", "sqlite://")


def _wait(done: Callable[[], bool], deadline: float, what: Callable[[], Any]) -> None:
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"the system did not become quiet: still waiting for {what()}")
        time.sleep(0.1)


def _busy(engine: Engine, broker: RedisServer | Path) -> str | None:
    """What is still going on, or None when quiet."""
    with engine.connect() as connection:
        unfinished = connection.execute(
            select(Delivery.status, func.count()).where(Delivery.status.in_(UNFINISHED)).group_by(Delivery.status)
        ).all()
        outbox = connection.execute(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.done_at.is_(None))
        ).scalar_one()
        due = connection.execute(
            select(func.count()).select_from(FollowUp).where(FollowUp.status == "pending", FollowUp.due_at <= utcnow())
        ).scalar_one()
    if unfinished:
        return f"deliveries {dict(unfinished)}"  # type: ignore[arg-type]
    if outbox:
        return f"{outbox} outbox rows not done"
    if due:
        return f"{due} due follow-ups not claimed"
    waiting = _broker_messages(broker)
    return f"{waiting} messages in the broker" if waiting else None


def _broker_messages(broker: RedisServer | Path) -> int:
    if isinstance(broker, Path):
        return sum(1 for _ in broker.iterdir()) if broker.exists() else 0
    return sum(_redis(broker.port, "LLEN", queue) for queue in QUEUES)


def _redis(port: int, *command: str) -> int:
    """One integer command over RESP, so that the helper needs no client library."""
    request = f"*{len(command)}\r\n" + "".join(f"${len(part)}\r\n{part}\r\n" for part in command)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request.encode())
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(64)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b":"), f"redis answered {reply!r} to {command}"
    return int(reply[1:].strip())


def _sweeps(worker_logs: Callable[[], str] | None) -> int:
    return len(SWEEP_DONE.findall(worker_logs())) if worker_logs is not None else 0


def _emails(source: SmtpSink | Path) -> list[Email]:
    if isinstance(source, Path):
        found = []
        for path in sorted(source.glob("*.eml")):
            message = message_from_bytes(path.read_bytes(), policy=policy.default)
            recipients = tuple(a.strip() for a in str(message["To"]).split(","))
            found.append(Email(recipients, message))  # type: ignore[arg-type]
        return found
    with source.lock:
        return [Email(tuple(r.rcpt_tos), r.message) for r in source.received]


def _snapshot(emails: SmtpSink | Path, webhook: WebhookSink | None) -> object:
    """A snapshot of what the sinks hold, to compare: a rewritten .eml file changes its time."""
    hooks = len(webhook.requests) if webhook is not None else 0
    if isinstance(emails, Path):
        files = sorted((p.name, p.stat().st_mtime_ns) for p in emails.glob("*.eml")) if emails.exists() else []
        return (files, hooks)
    with emails.lock:
        return (len(emails.received), hooks)


def _assert_each_once(database_url: str, source: SmtpSink | Path, webhook: WebhookSink | None) -> list[Email]:
    emails = _emails(source) if not isinstance(source, Path) or source.exists() else []
    about = _deliveries(database_url, [str(e.message["X-Intake-Delivery"] or "") for e in emails])
    counts: Counter[tuple[str, str]] = Counter()
    for email in emails:
        delivery = about.get(str(email.message["X-Intake-Delivery"] or ""))
        for recipient in email.recipients:
            counts[(recipient, f"Message-ID {email.message['Message-ID']}")] += 1
            if delivery is not None:
                counts[(recipient, delivery)] += 1
    if webhook is not None:
        for _, body in list(webhook.requests):
            alert = json.loads(body)
            counts[("webhook", f"lead {alert.get('lead_id')} tier {alert.get('tier')}")] += 1
    twice = {key: n for key, n in counts.items() if n != 1}
    assert not twice, f"sent more than once: {twice}"
    return emails


def _deliveries(database_url: str, ids: list[str]) -> dict[str, str]:
    """What each delivery is about: its kind, lead, screening and booking (not its own id)."""
    wanted = []
    for value in ids:
        try:
            wanted.append(uuid.UUID(value))
        except ValueError:
            continue
    if not wanted:
        return {}
    engine = create_engine(_sync_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(Delivery.id, Delivery.kind, Delivery.lead_id, Delivery.screening_id, Delivery.ref_id).where(
                    Delivery.id.in_(wanted)
                )
            ).all()
    finally:
        engine.dispose()
    return {str(row.id): f"{row.kind} lead={row.lead_id} screening={row.screening_id} ref={row.ref_id}" for row in rows}
