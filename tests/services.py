"""Real services the worker tests drive: a Redis server of their own, an SMTP sink, a webhook sink, a worker.

Redis, the SMTP sink, ports and waiting come from `bench.support`, which the benchmarks share.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.support import Received, RedisServer, SmtpBehaviour, SmtpSink, free_port, stop_process, wait_for

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
