"""The public intake: validate, score, and store lead + screening + consent in one transaction."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any, cast

import msgspec
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from intake.booking.links import booking_url
from intake.db.base import new_id, utcnow
from intake.db.models import IdempotencyRecord, urgency_of
from intake.leads.contact import Contact, check_contact, search_text
from intake.leads.schemas import (
    ActionOut,
    AdviceOut,
    IntakeResult,
    IntakeSubmission,
    ReasonOut,
)
from intake.leads.store import Busy, Disconnected, SubmissionRows, WriteConflict, write_submission
from intake.messaging import kinds
from intake.messaging.outbox import routing_queue
from intake.messaging.publishing.publication import Publication
from intake.messaging.publishing.publisher import BackgroundPublisher
from intake.problems import FieldProblem, InvalidFields
from intake.screening import Catalog, RuleSet, RuleSetError
from intake.settings import Settings
from intake.vocabulary import LeadStatus

log = structlog.get_logger(__name__)

# A concurrent first submission by the same person races us to the unique email: try again once it
# has committed, and we find their lead.
_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class IntakeOutcome:
    result: dict[str, Any]
    replayed: bool


class IntakeService:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        catalog: Catalog,
        settings: Settings,
        publisher: BackgroundPublisher,
    ):
        self._sessionmaker = sessionmaker
        self._publisher = publisher
        self._engine: AsyncEngine = sessionmaker.kw["bind"]
        self._catalog = catalog
        self._settings = settings
        version = settings.intake.rule_set_version
        if version and version not in catalog.rule_sets:
            known = ", ".join(sorted(catalog.rule_sets))
            raise RuleSetError(f"RULE_SET_VERSION={version!r} names no rule set (known: {known})")
        self._rule_set: RuleSet = catalog.get(version) if version else catalog.latest

    @property
    def rule_set(self) -> RuleSet:
        return self._rule_set

    def check(self, submission: IntakeSubmission) -> tuple[Contact, dict[str, Any]]:
        """Every problem of the submission at once, or the clean contact and answers."""
        contact, errors = check_contact(submission.contact)
        if not submission.consent.privacy:
            errors.append(FieldProblem("consent.privacy", "The privacy notice must be accepted to submit the screen."))
        answers, answer_errors = self._catalog.questionnaire.validate(submission.answers)
        errors.extend(answer_errors)
        if errors or contact is None:
            raise InvalidFields(errors)
        return contact, answers

    async def submit(self, submission: IntakeSubmission, idempotency_key: str | None) -> IntakeOutcome:
        request_hash = hashlib.sha256(msgspec.json.encode(submission)).hexdigest() if idempotency_key else ""
        if idempotency_key:
            replay = await self._replay(idempotency_key, request_hash)
            if replay is not None:
                return replay
        contact, answers = self.check(submission)
        for attempt in range(_ATTEMPTS):
            try:
                return await self._store(submission, contact, answers, idempotency_key, request_hash)
            except WriteConflict:
                if idempotency_key:
                    replay = await self._replay(idempotency_key, request_hash)
                    if replay is not None:
                        return replay
                if attempt == _ATTEMPTS - 1:
                    raise
                log.info("intake.retry_after_conflict", attempt=attempt + 1)
            except Disconnected:
                # The engine does not ping connections before use (see create_engine): one that died
                # with the server fails here, has invalidated the pool, and the next attempt gets a new one.
                if attempt == _ATTEMPTS - 1:
                    raise
                log.warning("intake.retry_after_disconnect", attempt=attempt + 1)
            except Busy:
                # SQLite: a worker kept the write lock past the busy timeout. The person's screen is not lost
                # for that: wait again.
                if attempt == _ATTEMPTS - 1:
                    raise
                log.warning("intake.retry_after_busy", attempt=attempt + 1)
        raise AssertionError("unreachable")

    async def _replay(self, key: str, request_hash: str) -> IntakeOutcome | None:
        ttl = dt.timedelta(hours=self._settings.intake.idempotency_ttl_hours)
        async with self._sessionmaker() as session, session.begin():
            record = await session.get(IdempotencyRecord, _scoped(key))
            if record is not None and record.created_at < utcnow() - ttl:
                await session.delete(record)  # expired: the key starts a new request
                return None
        if record is None:
            return None
        if record.request_hash != request_hash:
            reused = "This Idempotency-Key was already used with a different request body."
            raise InvalidFields([FieldProblem("Idempotency-Key", reused)], detail=reused)
        return IntakeOutcome(result=record.response, replayed=True)

    async def _store(
        self,
        submission: IntakeSubmission,
        contact: Contact,
        answers: dict[str, Any],
        idempotency_key: str | None,
        request_hash: str,
    ) -> IntakeOutcome:
        rule_set = self._rule_set
        lang = submission.language
        assessment = rule_set.assess(answers)
        reasons = rule_set.reasons(assessment, lang)
        clinic = self._settings.clinic
        now = utcnow()
        tier, route, score = assessment.tier.value, assessment.route.value, assessment.score
        triage = {
            "tier": tier,
            "tier_rank": assessment.tier.rank,
            "route": route,
            "score": score,
            "urgency": urgency_of(assessment.tier.rank, score),
            "last_screened_at": now,
            "updated_at": now,
        }
        screening_id, outbox_id = new_id(), new_id()
        queue = routing_queue(route)
        rows = SubmissionRows(
            lead={
                "id": new_id(),
                "created_at": now,
                "status": LeadStatus.NEW,
                **_contact_values(contact, lang),
                **triage,
            },
            screening={
                "id": screening_id,
                "created_at": now,
                "language": lang,
                "answers": answers,
                "rule_set_version": rule_set.version,
                "tier": tier,
                "route": route,
                "score": score,
                "reasons": [{"code": r.code, "tier": r.tier.value, "text": r.text} for r in reasons],
                "rescored_from_id": None,
            },
            outbox={
                "id": outbox_id,
                "created_at": now,
                "topic": kinds.TOPIC_ROUTE_SCREENING,
                "ref_id": screening_id,
                "queue": queue,
                "publish_count": 0,
            },
            consent={
                "id": new_id(),
                "created_at": now,
                "screening_id": screening_id,
                "privacy_notice_version": clinic.privacy_notice_version,
                "privacy_accepted_at": now,
                "email_followup": submission.consent.email_followup,
                "sms": submission.consent.sms,
            },
        )

        def answer(lead_id: uuid.UUID) -> dict[str, Any]:
            # The person's own signed link: they can book straight from the answer.
            advice = rule_set.advice(
                assessment, lang, clinic_phone=clinic.phone, booking_url=booking_url(self._settings, lead_id)
            )
            return cast(
                dict[str, Any],
                msgspec.to_builtins(
                    IntakeResult(
                        lead_id=lead_id,
                        screening_id=screening_id,
                        tier=tier,
                        route=route,
                        score=score,
                        rule_set=rule_set.version,
                        reasons=[ReasonOut(code=r.code, text=r.text) for r in reasons],
                        advice=AdviceOut(
                            title=advice.title,
                            body=advice.body,
                            actions=[ActionOut(kind=a.kind, label=a.label, href=a.href) for a in advice.actions],
                        ),
                        disclaimer=rule_set.disclaimer(lang),
                    )
                ),
            )

        result: dict[str, Any] | None = None

        def idempotency_record(lead_id: uuid.UUID) -> dict[str, Any]:
            # Kept in the same transaction: a retried request gets this very answer back.
            nonlocal result
            result = answer(lead_id)
            return {
                "key": _scoped(cast(str, idempotency_key)),
                "request_hash": request_hash,
                "status_code": 201,
                "response": result,
                "created_at": now,
            }

        lead_id = await write_submission(self._engine, rows, idempotency_record if idempotency_key else None)
        if result is None:
            result = answer(lead_id)
        log.info(
            "intake.screened",
            lead_id=str(lead_id),
            screening_id=str(screening_id),
            tier=tier,
            route=route,
            rule_set=rule_set.version,
        )
        # Committed: the routing task goes to the broker in the background, so the patient never
        # waits on it, and a broker that is down only delays the follow-through (the sweep
        # publishes the outbox row again).
        self._publisher.publish_soon([Publication(kinds.TASK_ROUTE_SCREENING, outbox_id, queue)])
        return IntakeOutcome(result=result, replayed=False)


def _contact_values(contact: Contact, language: str) -> dict[str, Any]:
    """The newest details win: a returning person may have moved, or changed their number.

    A phone or ZIP left out (None) keeps the one on file, and the search text the phone on file
    (see `write_submission`).
    """
    return {
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "email": contact.email,
        "phone": contact.phone,
        "preferred_contact": contact.preferred_contact,
        "location": contact.location,
        "zip": contact.zip,
        "language": language,
        "search_text": search_text(contact.first_name, contact.last_name, contact.email, contact.phone),
    }


def _scoped(key: str) -> str:
    return f"intake:{key}"


__all__ = ["IntakeOutcome", "IntakeService"]
