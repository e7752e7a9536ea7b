"""HTTP routes of leads: the public intake (questionnaire, submission) and the staff lists, queue and lead work."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, patch, post
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter

from intake.db.models import StaffMember
from intake.error_shape import JSON_BODY, documented
from intake.instants import optional_instants
from intake.leads.queue import LeadQueue
from intake.leads.rescoring import RescoreService
from intake.leads.schemas import (
    IntakeResult,
    IntakeSubmission,
    LeadDetail,
    LeadFilters,
    LeadPage,
    LeadPatch,
    NoteIn,
    NoteOut,
    QueuePage,
    RescoreIn,
    RescoreOut,
    Sort,
)
from intake.leads.submission import IntakeService
from intake.leads.work import LeadWork
from intake.screening import Catalog
from intake.staff.guards import STAFF, can_export, requires_role
from intake.vocabulary import CAN_SEE_ANSWERS, Language

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
    opt = {"public": True}

    @get(
        "/questionnaire",
        operation_id="getQuestionnaire",
        summary="The symptom screen (FHIR Questionnaire shape) in the asked language",
        cache_control=CacheControlHeader(public=True, max_age=300),
        responses=documented(422),
    )
    async def questionnaire(
        self,
        catalog: NamedDependency[Catalog],
        intake_service: NamedDependency[IntakeService],
        lang: Annotated[Language, QueryParameter(description="en or es")] = "en",
    ) -> Response[dict[str, Any]]:
        return Response(catalog.questionnaire.as_fhir(lang, intake_service.rule_set.version))

    @post(
        "/",
        operation_id="submitScreen",
        summary="Submit a filled screen; answers at once with the tier, route, reasons and advice",
        status_code=201,
        responses=documented(*JSON_BODY, 429),
    )
    async def submit(
        self,
        data: JSONBody[IntakeSubmission],
        intake_service: NamedDependency[IntakeService],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[IntakeResult]:
        outcome = await intake_service.submit(data, idempotency_key)
        headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
        return Response(outcome.result, status_code=201, headers=headers)  # type: ignore[arg-type]


Limit = Annotated[int, QueryParameter(ge=1, le=100, description="page size, at most 100")]
Cursor = Annotated[str | None, QueryParameter(description="next_cursor of the previous page")]


def lead_filters(
    status: FromQuery[str | None] = None,
    tier: FromQuery[str | None] = None,
    route: FromQuery[str | None] = None,
    location: FromQuery[str | None] = None,
    assigned_to: FromQuery[uuid.UUID | None] = None,
    created_from: FromQuery[dt.datetime | None] = None,
    created_to: FromQuery[dt.datetime | None] = None,
    q: Annotated[
        str | None, QueryParameter(min_length=3, max_length=200, description="name, email or phone: 3+ characters")
    ] = None,
) -> LeadFilters:
    # Compared with stored UTC moments: a time without an offset, or out of range, is 422 here, not a failed query.
    moments = optional_instants(created_from=created_from, created_to=created_to)
    return LeadFilters(status, tier, route, location, assigned_to, moments["created_from"], moments["created_to"], q)


class LeadController(Controller):
    path = "/api/leads"
    tags = ["leads"]
    security = STAFF
    dependencies = {"filters": Provide(lead_filters, sync_to_thread=False)}

    @get(
        "/",
        operation_id="listLeads",
        summary="Leads, filtered, by urgency or newest; keyset pages",
        responses=documented(401, 422),
    )
    async def list_leads(
        self,
        request: Request[StaffMember, Any, Any],
        lead_queue: NamedDependency[LeadQueue],
        filters: NamedDependency[LeadFilters],
        sort: FromQuery[Sort] = "urgency",
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> LeadPage:
        return await lead_queue.list_leads(filters, sort=sort, after=cursor, limit=limit, actor=request.user)

    @get(
        "/export.csv",
        operation_id="exportLeads",
        summary="The filtered leads as CSV (clinician, admin)",
        guards=[can_export],
        media_type="text/csv",
        responses=documented(401, 403, 422),
    )
    async def export(
        self,
        request: Request[StaffMember, Any, Any],
        lead_queue: NamedDependency[LeadQueue],
        filters: NamedDependency[LeadFilters],
        sort: FromQuery[Sort] = "urgency",
    ) -> Response[str]:
        body = await lead_queue.export_csv(filters, sort=sort, actor=request.user)
        # Litestar adds "; charset=utf-8" to a text/ type itself.
        return Response(
            body, media_type="text/csv", headers={"Content-Disposition": 'attachment; filename="leads.csv"'}
        )

    @get(
        "/{lead_id:uuid}",
        operation_id="getLead",
        summary="One lead: contact, consent, screenings, timeline",
        responses=documented(401, 404),
    )
    async def get_lead(
        self,
        lead_id: FromPath[uuid.UUID],
        request: Request[StaffMember, Any, Any],
        lead_work: NamedDependency[LeadWork],
    ) -> Response[LeadDetail]:
        body = await lead_work.detail(lead_id, actor=request.user)
        return Response(body, headers={"Cache-Control": "no-store"})

    @patch(
        "/{lead_id:uuid}",
        operation_id="updateLead",
        summary="Move the status, close, assign",
        responses=documented(401, 404, 409, *JSON_BODY),
    )
    async def update_lead(
        self,
        lead_id: FromPath[uuid.UUID],
        data: JSONBody[LeadPatch],
        request: Request[StaffMember, Any, Any],
        lead_work: NamedDependency[LeadWork],
    ) -> Response[LeadDetail]:
        body = await lead_work.update(lead_id, data, actor=request.user)
        return Response(body, headers={"Cache-Control": "no-store"})

    @post(
        "/{lead_id:uuid}/screenings/{screening_id:uuid}/rescore",
        operation_id="rescoreScreening",
        summary="Score a screening again (newest or named rule set); both results are kept (clinician, admin)",
        guards=[requires_role(*CAN_SEE_ANSWERS)],
        responses=documented(401, 403, 404, *JSON_BODY),
    )
    async def rescore(
        self,
        lead_id: FromPath[uuid.UUID],
        screening_id: FromPath[uuid.UUID],
        request: Request[StaffMember, Any, Any],
        rescore_service: NamedDependency[RescoreService],
        data: JSONBody[RescoreIn | None] = None,
    ) -> Response[RescoreOut]:
        version = data.rule_set_version if data is not None else None
        body = await rescore_service.rescore(lead_id, screening_id, rule_set_version=version, actor=request.user)
        return Response(body, status_code=201, headers={"Cache-Control": "no-store"})

    @post(
        "/{lead_id:uuid}/notes",
        operation_id="addLeadNote",
        summary="Add a note to a lead",
        responses=documented(401, 404, *JSON_BODY),
    )
    async def add_note(
        self,
        lead_id: FromPath[uuid.UUID],
        data: JSONBody[NoteIn],
        request: Request[StaffMember, Any, Any],
        lead_work: NamedDependency[LeadWork],
    ) -> NoteOut:
        return await lead_work.add_note(lead_id, data, actor=request.user)


class TriageController(Controller):
    path = "/api/triage-queue"
    tags = ["leads"]
    security = STAFF

    @get(
        "/",
        operation_id="triageQueue",
        summary="New leads to act on: emergency and urgent first",
        responses=documented(401, 422),
    )
    async def queue(
        self,
        request: Request[StaffMember, Any, Any],
        lead_queue: NamedDependency[LeadQueue],
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> QueuePage:
        return await lead_queue.triage_queue(after=cursor, limit=limit, actor=request.user)
