"""Litestar application factory: plugins, routes, middleware. Nothing else."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.config.app import AppConfig
from litestar.datastructures import CacheControlHeader
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from intake.bodies import JSONRequest
from intake.booking.availability import AvailabilityService
from intake.booking.controllers import (
    AvailabilityController,
    BookingController,
    LeadBookingController,
    PatientBookingController,
)
from intake.booking.patient import PatientBooking
from intake.booking.staff import StaffBooking
from intake.db.engine import create_engine, create_sessionmaker
from intake.errors import EXCEPTION_HANDLERS
from intake.health import HealthController
from intake.leads.controllers import IntakeController, LeadController, TriageController
from intake.leads.queue import LeadQueue
from intake.leads.rate_limit import submission_limit
from intake.leads.rescoring import RescoreService
from intake.leads.submission import IntakeService
from intake.leads.unsubscribe import UnsubscribeService
from intake.leads.unsubscribe_page import UnsubscribeController
from intake.leads.work import LeadWork
from intake.logs import configure_logging
from intake.messaging.publishing.celery_app import CeleryBroker, create_celery
from intake.messaging.publishing.publisher import BackgroundPublisher, InThread
from intake.messaging.publishing.redis_broker import RedisQueues
from intake.middleware import refuse_nul_middleware, request_id_middleware
from intake.screening import Catalog, load_catalog
from intake.settings import Settings, get_settings
from intake.staff.accounts import StaffService
from intake.staff.audit import AuditService
from intake.staff.auth import TokenIssuer, build_jwt_auth
from intake.staff.controllers import AuditController, AuthController, StaffController


def create_app(settings: Settings | None = None, catalog: Catalog | None = None) -> Litestar:
    settings = settings or get_settings()
    configure_logging(settings.app)
    # A malformed rule set stops start-up here, with a message naming the problem.
    catalog = catalog or load_catalog()
    engine = create_engine(settings.db, pre_ping=False)
    sessionmaker = create_sessionmaker(engine)
    publisher = BackgroundPublisher(
        RedisQueues(settings.broker.redis_url)
        if settings.broker.redis_url
        else InThread(CeleryBroker(create_celery(settings, fail_fast=True)))
    )
    intake_service = IntakeService(sessionmaker, catalog, settings, publisher)
    staff_service = StaffService(sessionmaker, settings.auth)
    audit_service = AuditService(sessionmaker)
    jwt_auth = build_jwt_auth(settings, staff_service)
    singletons = {
        "settings": settings,
        "catalog": catalog,
        "db_engine": engine,
        "intake_service": intake_service,
        "staff_service": staff_service,
        "lead_queue": LeadQueue(sessionmaker, settings),
        "lead_work": LeadWork(sessionmaker),
        "audit_service": audit_service,
        "token_issuer": TokenIssuer(jwt_auth),
        "availability_service": AvailabilityService(sessionmaker),
        "patient_booking": PatientBooking(sessionmaker, settings, publisher),
        "staff_booking": StaffBooking(sessionmaker, settings, publisher),
        "unsubscribe_service": UnsubscribeService(sessionmaker, settings),
        "rescore_service": RescoreService(sessionmaker, catalog),
    }

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await publisher.aclose()
            await engine.dispose()

    return Litestar(
        route_handlers=[
            HealthController,
            Router(path="/", route_handlers=[IntakeController], middleware=submission_limit(settings.intake)),
            AuthController,
            LeadController,
            TriageController,
            StaffController,
            AuditController,
            AvailabilityController,
            PatientBookingController,
            LeadBookingController,
            BookingController,
            UnsubscribeController,
        ],
        dependencies={
            name: Provide(_constant(value), use_cache=True, sync_to_thread=False) for name, value in singletons.items()
        },
        on_app_init=[jwt_auth.on_app_init, _no_global_security],
        middleware=[request_id_middleware, refuse_nul_middleware],
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=JSONRequest,
        # Staff lists, sign-in and patients' bookings carry personal data: no cache keeps a copy. The few
        # public, shareable answers (the questionnaire) say otherwise on their route.
        cache_control=CacheControlHeader(no_store=True),
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


def _no_global_security(app_config: AppConfig) -> AppConfig:
    """The bearer token is required per route (`intake.staff.guards.STAFF`), not for the whole document:
    an OpenAPI operation cannot clear a document-wide requirement with Litestar, so the probes, the
    questionnaire and the patients' routes would all claim to need a token."""
    if app_config.openapi_config is not None:
        app_config.openapi_config.security = None
    return app_config


def _constant(value: object) -> Callable[[], object]:
    def provide() -> object:
        return value

    return provide
