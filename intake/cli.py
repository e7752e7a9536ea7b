"""The `intake` command: serve the API (migrating first), and the admin tasks."""

from __future__ import annotations

import click

from intake.settings import get_settings


@click.group()
def main() -> None:
    """intake: back-pain screen, triage and follow-up service."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="uvicorn worker processes")
def serve(host: str, port: int, workers: int) -> None:
    """Migrate the database, then serve the API."""
    import uvicorn

    from intake.db.migrate import upgrade_head
    from intake.logs import configure_logging

    settings = get_settings()
    settings.app.data_dir.mkdir(parents=True, exist_ok=True)
    configure_logging(settings.app)
    upgrade_head(settings.db.url)
    uvicorn.run(
        "intake.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # uvicorn's access line carries the query string (searches by name)
        log_config=None,
        proxy_headers=True,
    )


@main.command()
def migrate() -> None:
    """Bring the database schema to the newest migration."""
    from intake.db.migrate import upgrade_head

    upgrade_head(get_settings().db.url)
    click.echo("database is at the newest migration")


if __name__ == "__main__":
    main()
