"""Real services the worker tests drive: a Redis server of their own, an SMTP sink, a webhook sink, a worker,
and `intake serve` as a user runs it.

Redis, the SMTP sink, ports and waiting come from `bench.support`, which the benchmarks share.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from bench.support import Received, RedisServer, SmtpBehaviour, SmtpSink, free_port, stop_process, wait_for
from tests.conftest import TEST_JWT_SECRET

STAFF = ("frontdesk@clinic.test", "lead-pt@clinic.test")
WEBHOOK_SECRET = "test-webhook-secret"
PUBLIC_BASE_URL = "https://intake.clinic.example"
"""Where links in the workers' emails point (required off the embedded default)."""
SWEEP_INTERVAL_SECONDS = 1.0
"""The worker's beat sweep in tests: short, so that waiting for one more sweep is short too."""

__all__ = ["Received", "RedisServer", "SmtpBehaviour", "SmtpSink", "WebhookSink", "Worker", "free_port", "wait_for"]


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
        stop_process(self.process, timeout=10, sig=signal.SIGKILL)
        self.process = None

    def stop(self) -> None:
        stop_process(self.process, timeout=20)
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
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
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
    """The process's children, whichever of its threads started them (`intake serve`'s supervisor thread does)."""
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in children.read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
