"""Migrations are the schema: they build it from empty and match the models on both databases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import create_async_engine

from intake.app import create_app
from intake.db.migrate import upgrade_head
from intake.db.models import Base
from tests.conftest import make_settings


async def test_models_and_migrations_do_not_drift(database_url: str) -> None:
    engine = create_async_engine(database_url)

    def diff(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with engine.connect() as connection:
        changes = await connection.run_sync(diff)
    await engine.dispose()
    assert changes == [], f"models and migrations differ; add a migration: {changes}"


def test_upgrade_head_on_an_empty_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'fresh.db'}"
    upgrade_head(url)
    upgrade_head(url)  # a second run is a no-op
    assert (tmp_path / "nested" / "fresh.db").exists()


async def test_ready_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    settings = make_settings("postgresql+asyncpg://postgres@127.0.0.1:1/none", tmp_path)
    async with AsyncTestClient(app=create_app(settings)) as client:
        assert (await client.get("/health")).status_code == 200
        response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"
