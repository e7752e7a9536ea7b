"""Litestar application factory: plugins, routes, middleware. Nothing else."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from intake.db.engine import create_engine, create_sessionmaker
from intake.errors import EXCEPTION_HANDLERS
from intake.health import HealthController
from intake.leads.controllers import IntakeController
from intake.leads.services import IntakeService
from intake.logs import configure_logging
from intake.messaging.publisher import Publisher
from intake.middleware import request_id_middleware
from intake.screening import Catalog, load_catalog
from intake.settings import Settings, get_settings
from workers.celery_app import CeleryBroker, create_celery


def create_app(settings: Settings | None = None, catalog: Catalog | None = None) -> Litestar:
    settings = settings or get_settings()
    configure_logging(settings.app)
    # A malformed rule set stops start-up here, with a message naming the problem.
    catalog = catalog or load_catalog()
    engine = create_engine(settings.db)
    sessionmaker = create_sessionmaker(engine)
    intake_service = IntakeService(sessionmaker, catalog, settings)
    publisher = Publisher(CeleryBroker(create_celery(settings, fail_fast=True)))

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await engine.dispose()

    return Litestar(
        route_handlers=[HealthController, IntakeController],
        dependencies={
            "settings": Provide(lambda: settings, use_cache=True, sync_to_thread=False),
            "catalog": Provide(lambda: catalog, use_cache=True, sync_to_thread=False),
            "db_engine": Provide(lambda: engine, use_cache=True, sync_to_thread=False),
            "intake_service": Provide(lambda: intake_service, use_cache=True, sync_to_thread=False),
            "publisher": Provide(lambda: publisher, use_cache=True, sync_to_thread=False),
        },
        middleware=[request_id_middleware],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.intake.max_body_bytes,
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="intake",
            version="1",
            description="Back-pain symptom screen, triage and follow-up for Empower Fitness.",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        logging_config=None,  # ours (intake.logs); Litestar's would replace the root handler
        debug=False,
    )
