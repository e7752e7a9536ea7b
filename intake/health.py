"""Probes: liveness (`/health`), readiness (`/ready`: the database answers) and the pipeline (`/pipeline`).

`/ready` is about the API alone: while workers are down the outbox keeps every submission, so a load
balancer must keep sending them. `/pipeline` tells whether the work behind the answers is moving.
"""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.messaging.pipeline import PipelineStatus, pipeline_status, unreadable
from intake.settings import Settings

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

    @get(
        "/pipeline",
        operation_id="pipeline",
        summary="Workers and the scheduler are alive and work is moving (else 503, with the reasons)",
        description=(
            "503 when no worker or no scheduler has shown a heartbeat for PIPELINE_STALE_HEARTBEAT_SECONDS, or "
            "when a screening has waited to be routed, or a seek-care-now email or staff alert to be sent, for "
            "longer than PIPELINE_MAX_WAIT_SECONDS. Ages in seconds, counts and times only."
        ),
        responses={
            503: ResponseSpec(PipelineStatus, description="Work is not moving: the reasons", generate_examples=False)
        },
    )
    async def pipeline(
        self, db_engine: NamedDependency[AsyncEngine], settings: NamedDependency[Settings]
    ) -> Response[PipelineStatus]:
        try:
            async with db_engine.connect() as connection:
                status = await pipeline_status(connection, settings.pipeline)
        except Exception as exc:
            log.warning("pipeline.database_unreachable", error=type(exc).__name__)
            status = unreadable(settings.pipeline)
        if not status.ok:
            log.warning("pipeline.stalled", reasons=[reason.code for reason in status.reasons])
        return Response(status, status_code=200 if status.ok else 503)
