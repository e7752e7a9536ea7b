"""Liveness (`/health`) and readiness (`/ready`: the database answers) probes."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger(__name__)


class Readiness(msgspec.Struct):
    status: str
    database: str


class HealthController(Controller):
    tags = ["system"]
    opt = {"public": True}

    @get("/health", operation_id="health", summary="The process is up")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @get(
        "/ready",
        operation_id="ready",
        summary="The database is reachable (else 503)",
        responses={503: ResponseSpec(Readiness, description="The database does not answer", generate_examples=False)},
    )
    async def ready(self, db_engine: NamedDependency[AsyncEngine]) -> Response[dict[str, Any]]:
        try:
            async with db_engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("ready.database_unreachable", error=type(exc).__name__)
            return Response({"status": "unavailable", "database": "unreachable"}, status_code=503)
        return Response({"status": "ok", "database": "ok"})
