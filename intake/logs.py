"""Structured logging: structlog for our lines and the stdlib's, JSON in production, no patient data."""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

import msgspec
import structlog
from sqlalchemy.exc import DBAPIError

from intake.settings import AppSettings

# Libraries whose DEBUG lines can carry SQL parameters or request bodies: never below WARNING.
_QUIET = {
    "sqlalchemy.engine": logging.WARNING,
    "aiosqlite": logging.WARNING,
    "asyncio": logging.WARNING,
    "uvicorn.access": logging.WARNING,
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
}


def configure_logging(settings: AppSettings) -> None:
    """Route structlog and stdlib logging through one renderer; safe to call more than once."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(serializer=_json_line)
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name, level in _QUIET.items():
        logging.getLogger(name).setLevel(max(level, logging.getLevelName(settings.log_level)))


def _json_line(event: dict[str, Any], **_: Any) -> str:
    """One JSON line by msgspec (several times faster than json.dumps); anything else as its str()."""
    return msgspec.json.encode(event, enc_hook=str).decode()


def error_summary(exc: BaseException) -> dict[str, Any]:
    """What may be logged of an error: its class, where it was raised and, for the database, the
    constraint. Never its message: PostgreSQL's DETAIL quotes the row (`Key (email)=(...)`)."""
    summary: dict[str, Any] = {"error": type(exc).__name__}
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        orig = exc.orig.__cause__ or exc.orig
        summary["db_error"] = type(orig).__name__
        for attribute in ("sqlstate", "constraint_name", "table_name"):
            value = getattr(orig, attribute, None)
            if value:
                summary[attribute] = value
    summary["frames"] = [
        f"{frame.filename.rsplit('/', 2)[-1]}:{frame.lineno} {frame.name}"
        for frame in traceback.extract_tb(exc.__traceback__)[-8:]
    ]
    return summary
