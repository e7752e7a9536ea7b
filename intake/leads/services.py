"""The public intake: validate, score, and store lead + screening + consent in one transaction."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog
from sqlalchemy import case, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from intake.booking.links import booking_url
from intake.db.base import new_id, utcnow
from intake.db.models import Consent, IdempotencyRecord, Lead, Screening, urgency_of
from intake.leads.contact import Contact, check_contact, search_text
from intake.leads.schemas import (
    ActionOut,
    AdviceOut,
    FieldError,
    IntakeResult,
    IntakeSubmission,
    ReasonOut,
)
from intake.messaging.outbox import Publication, publication_of, routing_message
from intake.screening import Catalog, RuleSet, RuleSetError
from intake.settings import Settings

log = structlog.get_logger(__name__)

# A concurrent first submission by the same person races us to the unique email: try again once it
# has committed, and we find their lead.
_ATTEMPTS = 3


class SubmissionInvalid(Exception):
    """The submission breaks one or more rules; nothing was stored."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = errors


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key was first used with a different request body."""


@dataclass(frozen=True, slots=True)
class IntakeOutcome:
    result: dict[str, Any]
    replayed: bool
    publications: tuple[Publication, ...] = ()
    """Work to hand the broker once the response is on its way (committed already)."""


class IntakeService:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], catalog: Catalog, settings: Settings):
        self._sessionmaker = sessionmaker
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
            errors.append(FieldError("consent.privacy", "The privacy notice must be accepted to submit the screen."))
        answers, answer_errors = self._catalog.questionnaire.validate(submission.answers)
        errors.extend(FieldError(e.field, e.message) for e in answer_errors)
        if errors or contact is None:
            raise SubmissionInvalid(errors)
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
            except IntegrityError:
                if idempotency_key:
                    replay = await self._replay(idempotency_key, request_hash)
                    if replay is not None:
                        return replay
                if attempt == _ATTEMPTS - 1:
                    raise
                log.info("intake.retry_after_conflict", attempt=attempt + 1)
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
            raise IdempotencyKeyReused
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

        async with self._sessionmaker() as session, session.begin():
            lead = await self._find_lead(session, contact)
            if lead is None:
                lead = Lead(id=new_id(), created_at=now, status="new")
                session.add(lead)
            _apply_contact(lead, contact, lang)
            lead.tier, lead.tier_rank, lead.route, lead.score = (
                assessment.tier.value,
                assessment.tier.rank,
                assessment.route.value,
                assessment.score,
            )
            lead.urgency = urgency_of(assessment.tier.rank, assessment.score)
            lead.last_screened_at = now
            lead.updated_at = now
            # The person's own signed link: they can book straight from the answer.
            advice = rule_set.advice(
                assessment, lang, clinic_phone=clinic.phone, booking_url=booking_url(self._settings, lead.id)
            )
            screening = Screening(
                id=new_id(),
                created_at=now,
                lead=lead,
                language=lang,
                answers=answers,
                rule_set_version=rule_set.version,
                tier=assessment.tier.value,
                route=assessment.route.value,
                score=assessment.score,
                reasons=[{"code": r.code, "tier": r.tier.value, "text": r.text} for r in reasons],
            )
            session.add(screening)
            outbox = routing_message(screening, now)
            session.add(outbox)
            session.add(
                Consent(
                    lead=lead,
                    screening=screening,
                    privacy_notice_version=clinic.privacy_notice_version,
                    privacy_accepted_at=now,
                    email_followup=submission.consent.email_followup,
                    sms=submission.consent.sms,
                    created_at=now,
                )
            )
            result = msgspec.to_builtins(
                IntakeResult(
                    lead_id=lead.id,
                    screening_id=screening.id,
                    tier=assessment.tier.value,
                    route=assessment.route.value,
                    score=assessment.score,
                    rule_set=rule_set.version,
                    reasons=[ReasonOut(code=r.code, text=r.text) for r in reasons],
                    advice=AdviceOut(
                        title=advice.title,
                        body=advice.body,
                        actions=[ActionOut(kind=a.kind, label=a.label, href=a.href) for a in advice.actions],
                    ),
                    disclaimer=rule_set.disclaimer(lang),
                )
            )
            if idempotency_key:
                session.add(
                    IdempotencyRecord(
                        key=_scoped(idempotency_key),
                        request_hash=request_hash,
                        status_code=201,
                        response=result,
                        created_at=now,
                    )
                )
        log.info(
            "intake.screened",
            lead_id=str(lead.id),
            screening_id=str(screening.id),
            tier=assessment.tier.value,
            route=assessment.route.value,
            rule_set=rule_set.version,
        )
        return IntakeOutcome(result=result, replayed=False, publications=(publication_of(outbox),))

    @staticmethod
    async def _find_lead(session: AsyncSession, contact: Contact) -> Lead | None:
        """The person's lead: the same normalised email first, else the same phone."""
        match = Lead.email == contact.email
        if contact.phone:
            match = or_(match, Lead.phone == contact.phone)
        stmt = (
            select(Lead)
            .where(match)
            .order_by(case((Lead.email == contact.email, 0), else_=1), Lead.created_at)
            .limit(1)
            .with_for_update()
        )
        return (await session.execute(stmt)).scalar_one_or_none()


def _apply_contact(lead: Lead, contact: Contact, language: str) -> None:
    """The newest details win: a returning person may have moved, or changed their number."""
    lead.first_name = contact.first_name
    lead.last_name = contact.last_name
    lead.email = contact.email
    if contact.phone:
        lead.phone = contact.phone
    lead.preferred_contact = contact.preferred_contact
    lead.location = contact.location
    if contact.zip:
        lead.zip = contact.zip
    lead.language = language
    lead.search_text = search_text(lead.first_name, lead.last_name, lead.email, lead.phone)


def _scoped(key: str) -> str:
    return f"intake:{key}"


__all__ = ["IdempotencyKeyReused", "IntakeOutcome", "IntakeService", "SubmissionInvalid"]
