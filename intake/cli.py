"""The `intake` command: serve the API (migrating first), run the worker and scheduler, admin tasks."""

from __future__ import annotations

import gc
import os
import signal
import sys
from typing import TYPE_CHECKING

import click

from intake.settings import get_settings, is_embedded_default
from intake.vocabulary import ROLES

if TYPE_CHECKING:
    from litestar import Litestar


@click.group()
def main() -> None:
    """intake: back-pain screen, triage and follow-up service."""


def _prepare() -> None:
    from intake.db.migrate import upgrade_head
    from intake.logs import configure_logging

    settings = get_settings()
    settings.app.data_dir.mkdir(parents=True, exist_ok=True)
    configure_logging(settings.app)
    upgrade_head(settings.db.url)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="uvicorn worker processes")
@click.option(
    "--with-worker/--no-worker",
    default=None,
    help="also run a Celery worker and the scheduler (default: on the embedded default, not with REDIS_URL)",
)
def serve(host: str, port: int, workers: int, with_worker: bool | None) -> None:
    """Migrate the database, then serve the API (and, on the embedded default, the worker and scheduler)."""
    import uvicorn

    # On the embedded default, links in emails point at this server unless PUBLIC_BASE_URL says where the
    # public reaches it; anywhere else the worker runs apart, and PUBLIC_BASE_URL must be set.
    local = "127.0.0.1" if host in {"0.0.0.0", "::"} else host  # noqa: S104 - comparing, not binding
    if is_embedded_default():
        os.environ.setdefault("PUBLIC_BASE_URL", f"http://{local}:{port}")
    get_settings.cache_clear()
    _prepare()
    settings = get_settings()
    supervisor = None
    if with_worker if with_worker is not None else not settings.broker.redis_url:
        from intake.supervisor import Supervisor

        # The worker and the scheduler as two children, each restarted when it dies (intake/supervisor.py).
        supervisor = Supervisor(
            {
                "worker": [sys.executable, "-m", "intake.cli", "worker"],
                "scheduler": [sys.executable, "-m", "intake.cli", "beat"],
            }
        )
        supervisor.start()
    # uvicorn stops on SIGTERM, then raises the signal again; with the default action that would
    # end this process before the `finally` below stops the children. Exiting normally runs it.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        uvicorn.run(
            "intake.cli:served_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=False,  # uvicorn's access line carries the query string (searches by name)
            log_config=None,
            # X-Forwarded-For is believed only from FORWARDED_ALLOW_IPS (none by default): uvicorn's own
            # default trusts loopback, from which every client of the embedded default arrives.
            proxy_headers=bool(settings.intake.trusted_proxies),
            forwarded_allow_ips=list(settings.intake.trusted_proxies),
        )
    finally:
        if supervisor is not None:
            # A second Ctrl-C or SIGTERM must not cut this short and leave a child running.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            supervisor.stop(timeout=20)


def served_app() -> Litestar:
    """The app as `intake serve` runs it (uvicorn's factory, in each worker process): the collector is
    tuned for a long-lived server once start-up is done. Tests build theirs with `create_app` alone."""
    from intake.app import create_app

    app = create_app()
    app.on_startup.append(_tune_gc)
    return app


def _tune_gc() -> None:
    # Everything built so far lives as long as the process: leave it out of the collector's
    # full passes, which otherwise walk the whole app (tens of ms) in the middle of requests.
    # A request allocates thousands of short-lived objects; collecting every 700 allocations
    # (the default) cost several percent of a submission's CPU (bench/intake.py).
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@main.command()
@click.option("--concurrency", type=int, default=None, help="worker processes (default WORKER_CONCURRENCY)")
@click.option("--queues", default="alerts,intake", show_default=True)
@click.option("--beat/--no-beat", default=False, help="run the scheduler inside this worker")
@click.option("--pool", default="prefork", show_default=True)
def worker(concurrency: int | None, queues: str, beat: bool, pool: str) -> None:
    """Run a Celery worker with the app's settings (alerts queue first)."""
    from intake.logs import configure_logging
    from intake.messaging.publishing.celery_app import create_celery
    from intake.supervisor import die_with_parent

    die_with_parent()

    settings = get_settings()
    settings.app.data_dir.mkdir(parents=True, exist_ok=True)
    configure_logging(settings.app)
    app = create_celery(settings)
    argv = [
        "worker",
        f"--concurrency={concurrency or settings.broker.worker_concurrency}",
        f"--queues={queues}",
        f"--pool={pool}",
        "--without-gossip",
        "--without-mingle",
        f"--loglevel={settings.app.log_level}",
        f"--hostname=intake-{os.getpid()}@%h",
    ]
    if beat:
        argv += ["--beat", f"--schedule={settings.app.data_dir / 'beat-schedule'}"]
    app.worker_main(argv)


@main.command()
def beat() -> None:
    """Run the Celery scheduler (sweeps, due follow-ups) with the app's settings; one per data folder."""
    from intake.logs import configure_logging
    from intake.messaging.publishing.celery_app import create_celery
    from intake.supervisor import die_with_parent

    die_with_parent()

    settings = get_settings()
    settings.app.data_dir.mkdir(parents=True, exist_ok=True)
    configure_logging(settings.app)
    app = create_celery(settings)
    app.start(
        [
            "beat",
            f"--schedule={settings.app.data_dir / 'beat-schedule'}",
            f"--loglevel={settings.app.log_level}",
        ]
    )


@main.command()
@click.option(
    "--here",
    type=click.Choice(["worker", "scheduler"]),
    default=None,
    help="only whether a worker (or scheduler) on this host has a fresh heartbeat: a container's healthcheck",
)
def pipeline(here: str | None) -> None:
    """Print the pipeline's status as GET /pipeline does; exit 1 when it is stalled."""
    import asyncio
    import socket

    import msgspec

    from intake.db.engine import create_engine
    from intake.messaging.pipeline import PipelineStatus, fresh_heartbeats, pipeline_status, unreadable

    settings = get_settings()

    async def read() -> PipelineStatus | int:
        engine = create_engine(settings.db)
        try:
            async with engine.connect() as connection:
                if here is not None:
                    host = socket.gethostname()[:120]
                    return await fresh_heartbeats(connection, settings.pipeline, role=here, host=host)
                return await pipeline_status(connection, settings.pipeline)
        except Exception:
            return unreadable(settings.pipeline) if here is None else 0
        finally:
            await engine.dispose()

    found = asyncio.run(read())
    if isinstance(found, int):
        click.echo(f"{found} {here} process(es) on this host with a fresh heartbeat")
        sys.exit(0 if found else 1)
    click.echo(msgspec.json.encode(found).decode())
    sys.exit(0 if found.ok else 1)


@main.command("create-staff")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--name", default=None, help="display name (default: the part of the email before @)")
def create_staff(email: str, role: str, name: str | None) -> None:
    """Create a staff account. The password is read from standard input when it is not a terminal."""
    import asyncio

    from intake.db.engine import create_engine, create_sessionmaker
    from intake.problems import Conflict, InvalidFields
    from intake.staff.accounts import StaffService

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    settings = get_settings()

    async def create() -> str:
        engine = create_engine(settings.db)
        try:
            service = StaffService(create_sessionmaker(engine), settings.auth)
            member = await service.create(email=email, name=name or email.split("@")[0], role=role, password=password)
            return str(member.id)
        finally:
            await engine.dispose()

    _prepare()
    try:
        staff_id = asyncio.run(create())
    except InvalidFields as exc:
        raise click.ClickException("; ".join(f"{e.field}: {e.message}" for e in exc.errors)) from None
    except Conflict as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(f"created {role} {email} ({staff_id})")


@main.command()
def migrate() -> None:
    """Bring the database schema to the newest migration."""
    from intake.db.migrate import upgrade_head

    upgrade_head(get_settings().db.url)
    click.echo("database is at the newest migration")


if __name__ == "__main__":
    main()
