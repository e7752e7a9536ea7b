"""Shared fixtures: a real PostgreSQL database made for this run, a SQLite file, and the app on each."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from intake.app import create_app
from intake.db.migrate import upgrade_head
from intake.db.models import Base
from intake.settings import Settings, load_settings

PG_ADMIN_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
# Shared by the API under test and the worker subprocesses, as JWT_SECRET is in production.
TEST_JWT_SECRET = "test-secret-" + "x" * 32
DATABASES = ("postgresql", "sqlite")
"""What `database_url` tests run on; `--databases sqlite` (or INTAKE_TEST_DATABASES=sqlite) picks one."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--databases",
        default=os.environ.get("INTAKE_TEST_DATABASES", ",".join(DATABASES)),
        help="comma-separated databases to test on: postgresql, sqlite (default: both; env INTAKE_TEST_DATABASES)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect tests on databases not chosen: `database_url`'s other parameter, and `pg_url` users."""
    chosen = {name.strip() for name in str(config.getoption("--databases")).split(",") if name.strip()}
    if unknown := chosen - set(DATABASES):
        raise pytest.UsageError(f"--databases: unknown {sorted(unknown)}; choose from {list(DATABASES)}")
    if chosen == set(DATABASES):
        return
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        parameter = callspec.params.get("database_url") if callspec is not None else None
        if parameter is not None:
            needs = {parameter}
        else:
            needs = {"postgresql"} if "pg_url" in getattr(item, "fixturenames", ()) else set()
        (kept if needs <= chosen else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _pg_url(dsn: str, database: str) -> str:
    base = dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


async def _pg_admin(sql: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, migrated to head, dropped at the end."""
    name = f"intake_test_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    url = _pg_url(PG_ADMIN_DSN, name)
    upgrade_head(url)
    yield url
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once; each test gets its own copy (the audit trail refuses DELETE)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    upgrade_head(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return url
    copy = tmp_path / "intake.db"
    shutil.copyfile(request.getfixturevalue("sqlite_template"), copy)
    return f"sqlite+aiosqlite:///{copy}"


def make_settings(database_url: str, data_dir: Path, **sections: dict[str, Any]) -> Settings:
    """The settings a fresh environment would give, pointed at a test database and data folder."""
    base = load_settings()
    settings = dataclasses.replace(
        base,
        app=dataclasses.replace(base.app, data_dir=data_dir, log_format="console"),
        db=dataclasses.replace(base.db, url=database_url, pool_size=5),
        # Tests sign in often from one address; test_login_limits.py sets limits of its own.
        auth=dataclasses.replace(
            base.auth,
            jwt_secret=TEST_JWT_SECRET,
            login_rate_limit_per_minute=0,
            login_account_rate_limit_per_minute=0,
        ),
        # Tests submit many screens from one address; test_rate_limit.py sets a limit of its own.
        intake=dataclasses.replace(base.intake, rate_limit_per_minute=0),
    )
    for section, changes in sections.items():
        settings = dataclasses.replace(
            settings, **{section: dataclasses.replace(getattr(settings, section), **changes)}
        )
    return settings


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "data")


async def emptied_after(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the test database; a PostgreSQL database is emptied when the test is done with it
    (TRUNCATE: the audit trail's triggers refuse row deletes). SQLite tests each have their own file."""
    engine = create_async_engine(database_url)
    yield engine
    if database_url.startswith("postgresql"):
        tables = [t.name for t in Base.metadata.sorted_tables]
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
    await engine.dispose()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[AsyncEngine]:
    async for engine in emptied_after(database_url):
        yield engine


@pytest.fixture
async def client(settings: Settings, db: AsyncEngine) -> AsyncIterator[AsyncTestClient[Any]]:
    app = create_app(settings)
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


async def count_rows(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


@pytest.fixture
async def staff(settings: Settings, client: AsyncTestClient[Any]) -> Any:
    """A front_desk, a clinician and an admin, signed in: `staff["clinician"]` are request headers."""
    from tests.staff_fixtures import make_staff

    return await make_staff(settings, client)
