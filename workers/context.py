"""What a worker process needs, built once per process (after the fork): engine, transport, senders."""

from __future__ import annotations

import os
from dataclasses import dataclass

from celery.signals import worker_process_shutdown
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from intake.db.sync import create_sync_engine, create_sync_sessionmaker
from intake.logs import configure_logging
from intake.messaging.deliveries import DeliverySender
from intake.messaging.mail.builder import EmailBuilder
from intake.messaging.mail.transport import Transport, create_transport
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


_context: WorkerContext | None = None


def context() -> WorkerContext:
    global _context
    if _context is None or _context.pid != os.getpid():
        settings = get_settings()
        configure_logging(settings.app)
        engine = create_sync_engine(settings.db)
        maker = create_sync_sessionmaker(engine)
        transport = create_transport(settings)
        builder = EmailBuilder(settings, load_catalog())
        _context = WorkerContext(
            pid=os.getpid(),
            settings=settings,
            engine=engine,
            sessionmaker=maker,
            transport=transport,
            sender=DeliverySender(create_sync_sessionmaker(engine, autocommit=True), transport, builder, settings),
        )
    return _context


@worker_process_shutdown.connect
def _close(**_: object) -> None:
    if _context is not None and _context.pid == os.getpid():
        _context.transport.close()
        _context.engine.dispose()
