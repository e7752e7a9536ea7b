"""Real services the worker tests drive: a Redis server of their own, an SMTP sink, a webhook sink, a worker,
and `intake serve` as a user runs it."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

from tests.conftest import TEST_JWT_SECRET

STAFF = ("frontdesk@clinic.test", "lead-pt@clinic.test")
WEBHOOK_SECRET = "test-webhook-secret"
SWEEP_INTERVAL_SECONDS = 1.0
"""The worker's beat sweep in tests: short, so that waiting for one more sweep is short too."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class RedisServer:
    """A redis-server on its own port, so a test may stop and start it without touching anyone else's."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.mkdtemp(prefix="intake-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self._process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, 10, "redis to start")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


@dataclass
class Received:
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes


@dataclass
class SmtpBehaviour:
    """Answers to give: the next DATA replies (e.g. two 451s), and whether RCPT should hang."""

    data_replies: list[str] = field(default_factory=list)
    hold_rcpt: threading.Event | None = None
    rcpt_seen: threading.Event = field(default_factory=threading.Event)


class _Handler:
    def __init__(self, sink: SmtpSink):
        self._sink = sink

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        behaviour = self._sink.behaviour
        behaviour.rcpt_seen.set()
        if behaviour.hold_rcpt is not None:
            # Set from the test's thread: wait for it off the server's event loop.
            await asyncio.to_thread(behaviour.hold_rcpt.wait)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._sink.lock:
            self._sink.data_commands += 1
            if self._sink.behaviour.data_replies:
                return self._sink.behaviour.data_replies.pop(0)
            raw = bytes(envelope.content)
            message = email.message_from_bytes(raw, policy=email.policy.default)
            self._sink.received.append(Received(list(envelope.rcpt_tos), message, raw))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


class SmtpSink:
    """An aiosmtpd server on loopback that keeps what it accepts and answers as told."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Received] = []
        self.data_commands = 0
        self.lock = threading.Lock()
        self.behaviour = SmtpBehaviour()
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def reset(self) -> None:
        with self.lock:
            self.received.clear()
            self.data_commands = 0
            self.behaviour = SmtpBehaviour()

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if address in r.rcpt_tos]


class WebhookSink:
    """A plain HTTP server on loopback that records the POSTs it gets."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/alerts"
        self.requests: list[tuple[dict[str, str], bytes]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()


class Worker:
    """`intake worker --beat` as a subprocess, the way production runs it."""

    def __init__(self, env: dict[str, str], log_path: Path, concurrency: int = 2):
        self._env = env
        self._log_path = log_path
        self._concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log_file = self._log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "intake.cli", "worker", "--beat", f"--concurrency={self._concurrency}"],
            env=self._env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(lambda: b"ready." in self._log_path.read_bytes(), 60, "the worker to be ready")

    def kill(self) -> None:
        """SIGKILL the whole worker: the main process and its pool children, no chance to clean up."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None

    def logs(self) -> str:
        return self._log_path.read_text(errors="replace")


def worker_env(
    pg_url: str, redis: RedisServer, smtp: SmtpSink, data_dir: Path, webhook_url: str = ""
) -> dict[str, str]:
    """The environment of a worker on this Redis, sending to this SMTP sink, with short clocks."""
    return {
        **os.environ,
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis.url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "SMTP_STARTTLS": "false",
        "INTAKE_DATA_DIR": str(data_dir),
        "STAFF_ALERT_EMAILS": ",".join(STAFF),
        "STAFF_ALERT_WEBHOOK_URL": webhook_url,
        "STAFF_ALERT_WEBHOOK_SECRET": WEBHOOK_SECRET,
        # Short clocks so that recovery paths finish within a test.
        "SWEEP_INTERVAL_SECONDS": str(SWEEP_INTERVAL_SECONDS),
        "REPUBLISH_AFTER_SECONDS": "2",
        "SENDING_LEASE_SECONDS": "3",
        "EMAIL_RETRY_BASE_SECONDS": "0.3",
        "EMAIL_RETRY_MAX_DELAY_SECONDS": "1",
        "CELERY_VISIBILITY_TIMEOUT": "30",
        "LOG_LEVEL": "INFO",
        "JWT_SECRET": TEST_JWT_SECRET,
    }


def decoded(received: Any) -> str:
    """Subject, text and HTML parts as a reader sees them (the wire form is quoted-printable)."""
    message = received.message
    parts = [message.get_body(preferencelist=(kind,)) for kind in ("plain", "html")]
    return "\n".join([str(message["Subject"]), *(p.get_content() for p in parts if p is not None)])


class Served:
    """A running `intake serve`: its base URL and its log (the worker it starts writes there too)."""

    def __init__(self, process: subprocess.Popen[bytes], base_url: str, log_path: Path):
        self.process, self.base_url, self.log_path = process, base_url, log_path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


def serve(tmp_path: Path, extra_env: dict[str, str]) -> Iterator[Served]:
    """`intake serve` on a free port with its data under tmp_path; stopped, with its worker, when done."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SMTP_HOST"}}
    env.update({"INTAKE_DATA_DIR": str(tmp_path / "data"), "LOG_LEVEL": "DEBUG", **extra_env})
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "intake.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        served = Served(process, f"http://127.0.0.1:{port}", log_path)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"intake serve exited early:\n{served.logs()}")
            try:
                if httpx.get(f"{served.base_url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            process.kill()
            raise AssertionError(f"intake serve did not become ready:\n{served.logs()}")
        try:
            yield served
        finally:
            children = children_of(process.pid)
            process.terminate()
            process.wait(timeout=30)
            # The worker that `intake serve` started stops with it: none is left running.
            wait_for(lambda: not any(alive(pid) for pid in children), 30, "the worker to stop with intake serve")


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
