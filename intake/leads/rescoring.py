"""Re-scoring: an explicit staff action that scores a screening's answers again and keeps both results."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from intake.db.base import new_id, utcnow
from intake.db.models import Lead, Screening, StaffMember, urgency_of
from intake.leads.schemas import PreviousResult, ReasonOut, RescoreOut
from intake.problems import FieldProblem, InvalidFields, NotFound
from intake.screening import Catalog
from intake.staff import audit


class RescoreService:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], catalog: Catalog):
        self._sessionmaker = sessionmaker
        self._catalog = catalog

    async def rescore(
        self, lead_id: uuid.UUID, screening_id: uuid.UUID, *, rule_set_version: str | None, actor: StaffMember
    ) -> RescoreOut:
        """A new screening with the same answers, scored by `rule_set_version` (default: the newest).

        The original stays as it was; the lead's current triage follows the new result.
        """
        version = rule_set_version or self._catalog.latest.version
        if version not in self._catalog.rule_sets:
            known = ", ".join(sorted(self._catalog.rule_sets))
            raise InvalidFields([FieldProblem("rule_set_version", f"Unknown rule set; known: {known}.")])
        rule_set = self._catalog.get(version)
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            original = await session.get(Screening, screening_id)
            lead = await session.get(Lead, lead_id, with_for_update=True)
            if lead is None or original is None or original.lead_id != lead.id:
                raise NotFound("screening")
            assessment = rule_set.assess(original.answers)
            reasons = rule_set.reasons(assessment, original.language)  # type: ignore[arg-type]
            again = Screening(
                id=new_id(),
                created_at=now,
                lead=lead,
                language=original.language,
                answers=original.answers,
                rule_set_version=version,
                tier=assessment.tier.value,
                route=assessment.route.value,
                score=assessment.score,
                reasons=[{"code": r.code, "tier": r.tier.value, "text": r.text} for r in reasons],
                rescored_from_id=original.id,
            )
            session.add(again)
            lead.tier, lead.tier_rank, lead.route, lead.score = (
                assessment.tier.value,
                assessment.tier.rank,
                assessment.route.value,
                assessment.score,
            )
            lead.urgency = urgency_of(assessment.tier.rank, assessment.score)
            lead.updated_at = now
            audit.record(
                session,
                actor_id=actor.id,
                action="screening.rescore",
                lead_id=lead.id,
                fields=["tier", "route", "score", "reasons", "rule_set_version"],
            )
        return RescoreOut(
            id=again.id,
            rescored_from_id=original.id,
            rule_set_version=version,
            tier=again.tier,
            route=again.route,
            score=again.score,
            reasons=[ReasonOut(code=r.code, text=r.text) for r in reasons],
            previous=PreviousResult(
                rule_set_version=original.rule_set_version, tier=original.tier, score=original.score
            ),
        )
