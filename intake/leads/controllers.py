"""HTTP routes of the public intake: the questionnaire and the screen submission."""

from __future__ import annotations

from typing import Annotated, Any

from anyio import to_thread
from litestar import Controller, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody, QueryParameter

from intake.leads.schemas import IntakeResult, IntakeSubmission, Language
from intake.leads.services import IntakeService
from intake.messaging.publisher import Publisher
from intake.screening import Catalog

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        max_length=255,
        description="A retried POST with the same key returns the first answer and stores nothing new",
    ),
]


class IntakeController(Controller):
    path = "/api/intake"
    tags = ["intake"]

    @get(
        "/questionnaire",
        operation_id="getQuestionnaire",
        summary="The symptom screen (FHIR Questionnaire shape) in the asked language",
    )
    async def questionnaire(
        self,
        catalog: NamedDependency[Catalog],
        intake_service: NamedDependency[IntakeService],
        lang: Annotated[Language, QueryParameter(description="en or es")] = "en",
    ) -> Response[dict[str, Any]]:
        body = catalog.questionnaire.as_fhir(lang, intake_service.rule_set.version)
        return Response(body, headers={"Cache-Control": "public, max-age=300"})

    @post(
        "/",
        operation_id="submitScreen",
        summary="Submit a filled screen; answers at once with the tier, route, reasons and advice",
        status_code=201,
    )
    async def submit(
        self,
        data: JSONBody[IntakeSubmission],
        intake_service: NamedDependency[IntakeService],
        publisher: NamedDependency[Publisher],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[IntakeResult]:
        outcome = await intake_service.submit(data, idempotency_key)
        headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
        # Published after the answer is sent and the row committed: the patient never waits on the
        # broker, and a broker that is down only delays the follow-through (the sweep publishes it).
        background = (
            BackgroundTask(to_thread.run_sync, publisher.publish, outcome.publications)
            if outcome.publications
            else None
        )
        return Response(outcome.result, status_code=201, headers=headers, background=background)  # type: ignore[arg-type]
