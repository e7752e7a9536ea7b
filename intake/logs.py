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
    """Our lines straight from structlog, the stdlib's (uvicorn, Celery) through the same renderer,
    both to stderr; safe to call more than once.

    Our lines skip the stdlib's machinery (a LogRecord, handler locks, a formatter per line): the
    API writes two per submission, and that machinery cost more than the rest of the line.
    """
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
    level = logging.getLevelNamesMapping()[settings.log_level]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        logger_factory=_NamedLogger,
        wrapper_class=structlog.make_filtering_bound_logger(level),
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
    for name, quiet in _QUIET.items():
        logging.getLogger(name).setLevel(max(quiet, level))


class _NamedLogger(structlog.WriteLogger):
    """A structlog WriteLogger to stderr that keeps the name given to `get_logger` (for `logger`)."""

    def __init__(self, name: str | None = None, *_: Any) -> None:
        super().__init__(sys.stderr)
        self.name = name or "intake"


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
