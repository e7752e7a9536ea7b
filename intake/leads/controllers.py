"""HTTP routes of the public intake: the questionnaire and the screen submission."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.params import Parameter

from intake.leads.schemas import IntakeResult, IntakeSubmission, Language
from intake.leads.services import IntakeService
from intake.screening import Catalog


class IntakeController(Controller):
    path = "/api/intake"
    tags = ["intake"]

    @get(
        "/questionnaire",
        operation_id="getQuestionnaire",
        summary="The symptom screen (FHIR Questionnaire shape) in the asked language",
        cache_control=None,
    )
    async def questionnaire(
        self,
        catalog: Catalog,
        intake_service: IntakeService,
        lang: Annotated[Language, Parameter(description="en or es")] = "en",
    ) -> Response[dict[str, Any]]:
        body = catalog.questionnaire.as_fhir(lang, intake_service.rule_set.version)
        return Response(body, headers={"Cache-Control": "public, max-age=300"})

    @post(
        "/",
        operation_id="submitScreen",
        summary="Submit a filled screen; answers at once with the tier, route, reasons and advice",
        status_code=201,
        responses={},
    )
    async def submit(
        self,
        data: IntakeSubmission,
        intake_service: IntakeService,
        idempotency_key: Annotated[
            str | None,
            Parameter(
                header="Idempotency-Key",
                required=False,
                max_length=255,
                description="A retried POST with the same key returns the first answer and stores nothing new",
            ),
        ] = None,
    ) -> Response[IntakeResult]:
        outcome = await intake_service.submit(data, idempotency_key)
        headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
        return Response(outcome.result, status_code=201, headers=headers)  # type: ignore[arg-type]
