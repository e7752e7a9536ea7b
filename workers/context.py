"""What a worker process needs, built once per process (after the fork): engine, transport, senders."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from celery.signals import worker_process_shutdown
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from intake.booking.emails import BookingEmails
from intake.db.sync import create_sync_engine, create_sync_sessionmaker
from intake.leads.emails import FollowThroughEmails
from intake.logs import configure_logging
from intake.messaging.mail.builder import EmailBuilder
from intake.messaging.mail.transport import Transport, create_transport
from intake.messaging.sending import DeliverySender
from intake.screening import load_catalog
from intake.settings import Settings, get_settings


@dataclass
class WorkerContext:
    pid: int
    settings: Settings
    engine: Engine
    sessionmaker: sessionmaker[Session]
    transport: Transport
    sender: DeliverySender


EMAIL_TEMPLATE_PACKAGES = ("intake.leads", "intake.booking")


def delivery_sender(settings: Settings, maker: Callable[[], Session], transport: Transport) -> DeliverySender:
    """The sender with every domain's emails: each domain writes its own, from its own templates, by kind."""
    builder = EmailBuilder(settings, EMAIL_TEMPLATE_PACKAGES)
    follow_through = FollowThroughEmails(builder, settings, load_catalog())
    composers = {**follow_through.composers(), **BookingEmails(builder, settings).composers()}
    return DeliverySender(maker, transport, settings, composers=composers, stop_reason=follow_through.stop_reason)


_context: WorkerContext | None = None


def context() -> WorkerContext:
    global _context
    if _context is None or _context.pid != os.getpid():
        settings = get_settings()
        configure_logging(settings.app)
        engine = create_sync_engine(settings.db)
        maker = create_sync_sessionmaker(engine)
        transport = create_transport(settings)
        _context = WorkerContext(
            pid=os.getpid(),
            settings=settings,
            engine=engine,
            sessionmaker=maker,
            transport=transport,
            sender=delivery_sender(settings, create_sync_sessionmaker(engine, autocommit=True), transport),
        )
    return _context


@worker_process_shutdown.connect
def _close(**_: object) -> None:
    if _context is not None and _context.pid == os.getpid():
        _context.transport.close()
        _context.engine.dispose()
