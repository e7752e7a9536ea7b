"""The one support module of the benchmarks and the worker tests: processes, Redis, SMTP, CPU, statistics, databases.

Everything here is test and benchmark plumbing: it imports nothing from `intake` or `workers`, so
`tests/services.py` and every `bench/*.py` can share it without pulling in the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# --------------------------------------------------------------------------- ports, waiting, processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll `predicate` until it is true; TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 20, sig: int = signal.SIGTERM) -> None:
    """Signal the process group we started (its own session); SIGKILL it if it lingers."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


# --------------------------------------------------------------------------- redis-server


class RedisServer:
    """A redis-server of our own on a free port: nothing shared with other runs or the tests."""

    def __init__(self, folder: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._folder = folder if folder is not None else Path(tempfile.mkdtemp(prefix="intake-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self._folder.mkdir(parents=True, exist_ok=True)
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--dir", str(self._folder)]
        self.process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_for(lambda: self.command(b"PING") == b"+PONG", 10, "redis-server to start")

    def command(self, *words: bytes) -> bytes:
        """One RESP command over a fresh socket; the first reply line (b"" when Redis does not answer)."""
        request = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(request)
                return sock.recv(256).split(b"\r\n", 1)[0]
        except OSError:
            return b""

    def queue_length(self, queue: str) -> int:
        reply = self.command(b"LLEN", queue.encode())
        return int(reply[1:]) if reply.startswith(b":") else -1

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    @staticmethod
    def version() -> str:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False)
        found = re.search(r"v=(\S+)", out.stdout)
        return found.group(1) if found else "?"

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
        self.process = None


# --------------------------------------------------------------------------- SMTP sink

_DELIVERY_HEADER = re.compile(rb"^X-Intake-Delivery:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)


@dataclass
class Received:
    """One message the sink accepted."""

    at: float
    """time.time() once DATA was complete, just before the 250 reply."""
    rcpt_tos: list[str]
    raw: bytes
    """The message as sent (b"" when the sink keeps no bodies)."""
    delivery: str
    """Its X-Intake-Delivery header (the delivery's id), "" if none."""

    @cached_property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class SmtpBehaviour:
    """Answers to give: the next DATA replies (e.g. two 451s), and whether RCPT should hang."""

    data_replies: list[str] = field(default_factory=list)
    hold_rcpt: threading.Event | None = None
    rcpt_seen: threading.Event = field(default_factory=threading.Event)


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        behaviour = self._sink.behaviour
        behaviour.rcpt_seen.set()
        if behaviour.hold_rcpt is not None:
            # Set from another thread: wait for it off the server's event loop.
            await asyncio.to_thread(behaviour.hold_rcpt.wait)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        at = time.time()
        sink = self._sink
        raw = bytes(envelope.content)
        found = _DELIVERY_HEADER.search(raw.split(b"\r\n\r\n", 1)[0])
        delivery = found.group(1).strip().decode(errors="replace") if found else ""
        with sink.lock:
            sink.data_commands += 1
            if sink.behaviour.data_replies:
                return sink.behaviour.data_replies.pop(0)
            sink.received.append(Received(at, list(envelope.rcpt_tos), raw if sink.keep_bodies else b"", delivery))
            sink.bytes += len(raw)
        return "250 Message accepted for delivery"


class SmtpSink:
    """aiosmtpd on loopback, on its own thread: keeps what it accepts (with the time) and answers as told.

    `keep_bodies=False` keeps only the recipients and the delivery id of each message (a benchmark
    sending 100,000 emails does not need them in memory).
    """

    def __init__(self, keep_bodies: bool = True) -> None:
        from aiosmtpd.controller import Controller

        self.port = free_port()
        self.keep_bodies = keep_bodies
        self.received: list[Received] = []
        self.data_commands = 0
        self.bytes = 0
        self.lock = threading.Lock()
        self.behaviour = SmtpBehaviour()
        self._controller = Controller(_SinkHandler(self), hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._controller.stop()

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def reset(self) -> None:
        """Forget what was received, and answer normally again."""
        with self.lock:
            self.received.clear()
            self.data_commands = 0
            self.bytes = 0
            self.behaviour = SmtpBehaviour()

    clear = reset

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if address in r.rcpt_tos]


# --------------------------------------------------------------------------- CPU from /proc


def process_cpu(pid: int | None) -> float:
    """User + system CPU seconds of a live process (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def descendants(pid: int | None) -> list[int]:
    if pid is None:
        return []
    found: list[int] = []
    for child in children(pid):
        found += [child, *descendants(child)]
    return found


def machine_busy() -> float:
    """CPU seconds the whole machine has spent not idle (all cores, every process)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def postgres_backends(database: str) -> list[int]:
    """PostgreSQL backends serving `database` (their title reads `postgres: ... user database host`).

    Backends of other databases, and the server's shared processes (WAL writer, checkpointer, ...),
    are not the benchmark's own.
    """
    pids = []
    needle = f" {database} ".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                if title.startswith(b"postgres:") and needle in title:
                    pids.append(int(entry.name))
    return pids


OTHER_WORK = "other work"
"""The key of `CpuMeter.cores` for what the machine did that was not the benchmark's own."""


@dataclass(frozen=True)
class CpuReading:
    at: float
    machine: float
    parts: dict[str, dict[int, float]]
    counters: dict[str, float]


class CpuMeter:
    """CPU of the benchmark's own processes, part by part, and of the machine as a whole.

    `parts` name functions that list a part's live pids (a server, a worker and its pool, the
    PostgreSQL backends of the benchmark's database, this process); `counters` name functions that
    give cumulative CPU seconds directly (e.g. the children that have exited: `children_cpu`).
    Whatever else the machine did in between (Redis, other databases' backends, other people's
    jobs) is `OTHER_WORK`. A process that exits between two readings loses its share to other work.
    """

    def __init__(
        self,
        parts: dict[str, Callable[[], Iterable[int | None]]],
        counters: dict[str, Callable[[], float]] | None = None,
    ) -> None:
        self._parts = parts
        self._counters = counters or {}

    def read(self) -> CpuReading:
        parts = {
            name: {pid: process_cpu(pid) for pid in pids() if pid is not None} for name, pids in self._parts.items()
        }
        counters = {name: counter() for name, counter in self._counters.items()}
        return CpuReading(time.monotonic(), machine_busy(), parts, counters)

    @staticmethod
    def seconds(before: CpuReading, after: CpuReading) -> dict[str, float]:
        """CPU seconds each part used between the readings."""
        used = {
            name: sum(cpu - before.parts.get(name, {}).get(pid, 0.0) for pid, cpu in pids.items())
            for name, pids in after.parts.items()
        }
        used.update({name: after.counters[name] - before.counters.get(name, 0.0) for name in after.counters})
        return used

    @classmethod
    def cores(cls, before: CpuReading, after: CpuReading) -> dict[str, float]:
        """Cores each part kept busy on average (1.0: one core all the time), the machine, and other work."""
        elapsed = max(after.at - before.at, 1e-6)
        cores = {name: round(max(0.0, s) / elapsed, 2) for name, s in cls.seconds(before, after).items()}
        cores["machine"] = round((after.machine - before.machine) / elapsed, 2)
        ours = sum(v for k, v in cores.items() if k != "machine")
        cores[OTHER_WORK] = round(max(0.0, cores["machine"] - ours), 2)
        return cores


def children_cpu() -> float:
    """CPU seconds of this process's children that have exited and been waited for."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_quiet(limit: float, timeout: float, window: float = 2.0) -> float:
    """Wait (up to `timeout` s) until the machine uses at most `limit` cores; the last reading."""
    deadline = time.monotonic() + timeout
    announced = False
    while True:
        before = machine_busy()
        time.sleep(window)
        busy = round((machine_busy() - before) / window, 2)
        if busy <= limit:
            return busy
        if time.monotonic() > deadline:
            print(f"  WARNING: the machine stays busy ({busy:.2f} cores) with other work", flush=True)
            return busy
        if not announced:
            print(f"  waiting for the machine to be quiet ({busy:.2f} cores busy) ...", flush=True)
            announced = True


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float], digits: int = 1) -> dict[str, float]:
    """n, min, p50, p95, p99, max and mean of `values` (in their own unit)."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "min": round(ordered[0], digits),
        "p50": round(percentile(ordered, 50), digits),
        "p95": round(percentile(ordered, 95), digits),
        "p99": round(percentile(ordered, 99), digits),
        "max": round(ordered[-1], digits),
        "mean": round(sum(ordered) / len(ordered), digits),
    }


def histogram_percentile(histogram: dict[int, int], q: float) -> float:
    """The q-th percentile (0-100) of values counted in `histogram` (value -> count), nearest rank."""
    total = sum(histogram.values())
    if not total:
        return math.nan
    wanted = max(1, math.ceil(q / 100 * total))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= wanted:
            return float(value)
    return float(max(histogram))


# --------------------------------------------------------------------------- profiler


class Profiler:
    """py-spy recording a process (and, with `subprocesses`, its children) while a phase runs.

    Does nothing when no folder is given. py-spy writes its raw collapsed stacks on SIGINT.
    """

    def __init__(
        self, folder: Path | None, binary: str | None = None, rate: int = 100, subprocesses: bool = True
    ) -> None:
        self._folder = folder
        self._binary = binary or shutil.which("py-spy")
        self._rate = rate
        self._subprocesses = subprocesses
        if folder is not None and self._binary is None:
            raise RuntimeError("profiling needs py-spy (pip install py-spy, or give its path)")

    @contextlib.contextmanager
    def record(self, name: str, pid: int | None, *extra: str) -> Iterator[Path | None]:
        """Record `pid` as `<folder>/<name>.txt` for the duration of the block; `extra` are more py-spy flags."""
        if self._folder is None or self._binary is None or pid is None:
            yield None
            return
        self._folder.mkdir(parents=True, exist_ok=True)
        out = self._folder / f"{name}.txt"
        argv = [self._binary, "record", "--pid", str(pid), "--rate", str(self._rate), "--format", "raw"]
        argv += ["--output", str(out), "--nonblocking", *extra]
        if self._subprocesses:
            argv.append("--subprocesses")
        with (self._folder / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        time.sleep(1.0)  # py-spy attaches
        try:
            yield out
        finally:
            stop_process(process, timeout=60, sig=signal.SIGINT)
            print(f"  profile: {out}", flush=True)


# --------------------------------------------------------------------------- databases


def asyncpg_dsn(url: str) -> str:
    """postgresql+asyncpg://... (SQLAlchemy's form) as the postgresql://... asyncpg takes."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))


def sqlalchemy_url(url: str) -> str:
    """Any postgresql URL as the postgresql+asyncpg://... the app takes."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql+asyncpg", parts.netloc, parts.path, parts.query, parts.fragment))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def maintenance_dsn(url: str) -> str:
    """The server's `postgres` database, from which databases are created and dropped."""
    parts = urlsplit(asyncpg_dsn(url))
    return urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, parts.fragment))


def check_bench_database(url: str) -> str:
    """The database's name; SystemExit unless it contains "bench" (a benchmark may drop it)."""
    name = database_name(url)
    if not urlsplit(url).scheme.startswith("postgres"):
        raise SystemExit(f"--database-url must be a postgresql:// URL, got {url!r}")
    if "bench" not in name:
        raise SystemExit(f"refusing to drop or fill database {name!r}: use a name containing 'bench'")
    return name


async def _maintenance(url: str, *statements: str) -> list[Any]:
    import asyncpg

    connection = await asyncpg.connect(maintenance_dsn(url))
    try:
        return [await connection.fetchval(s) for s in statements]
    finally:
        await connection.close()


def database_exists(url: str) -> bool:
    name = database_name(url).replace("'", "''")
    found = asyncio.run(_maintenance(url, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"))[0]
    return bool(found)


def create_database(url: str) -> None:
    asyncio.run(_maintenance(url, f'CREATE DATABASE "{check_bench_database(url)}"'))


def drop_database(url: str) -> None:
    asyncio.run(_maintenance(url, f'DROP DATABASE IF EXISTS "{check_bench_database(url)}" WITH (FORCE)'))


def recreate_database(url: str) -> None:
    name = check_bench_database(url)
    asyncio.run(_maintenance(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'))
