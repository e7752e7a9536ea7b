"""A lead's one lifecycle: which status may follow which, every move with its event, and stopping a person's emails.

Staff changes, bookings and unsubscribes all come through here, so a status never changes without its
`LeadEvent`, and "stop emailing this person" means the same thing wherever it is asked for.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from intake.db.base import new_id, utcnow
from intake.db.models import Consent, Delivery, Lead, LeadEvent
from intake.messaging import kinds
from intake.messaging.followups.rows import cancel_statement, next_follow_up_statement, stopped_by
from intake.vocabulary import ENDED_STATUSES, OPEN_STATUSES, DeliveryStatus, LeadStatus

_FORWARD: dict[str, tuple[str, ...]] = {
    LeadStatus.NEW: (LeadStatus.CONTACTED,),
    LeadStatus.CONTACTED: (LeadStatus.CONSULT_BOOKED,),
    LeadStatus.CONSULT_BOOKED: (LeadStatus.CONSULT_DONE,),
    LeadStatus.CONSULT_DONE: (LeadStatus.CONVERTED, LeadStatus.NOT_CONVERTED),
}
_UNSENT = (DeliveryStatus.QUEUED, DeliveryStatus.FAILED)


def allowed_next(status: str) -> tuple[str, ...]:
    """Forward one step, or out of the pipeline (referred to medical care, closed) from any open status."""
    if status not in OPEN_STATUSES:
        return ()
    return (*_FORWARD[status], LeadStatus.REFERRED_OUT, LeadStatus.CLOSED)


async def move(
    session: AsyncSession,
    lead: Lead,
    target: str,
    *,
    actor_id: uuid.UUID | None,
    now: dt.datetime,
    reason: str | None = None,
) -> None:
    """Set the status, record the event, and stop the person's emails when the lead leaves the pipeline.
    The caller has checked the move (staff: `allowed_next`; bookings: `follow`); the lead row is locked."""
    session.add(
        LeadEvent(
            id=new_id(),
            created_at=now,
            lead_id=lead.id,
            actor_id=actor_id,
            kind="status_changed",
            from_value=lead.status,
            to_value=target,
            reason=reason,
        )
    )
    lead.status = target
    lead.closed_reason = reason
    if target in ENDED_STATUSES:
        await stop_emails(session, lead.id, reason="do_not_contact" if reason == "do_not_contact" else target)


async def follow(
    session: AsyncSession,
    lead: Lead,
    target: str,
    *,
    only_from: tuple[str, ...],
    actor_id: uuid.UUID | None,
    now: dt.datetime,
) -> None:
    """A move that follows from something else (a booking made, attended or cancelled): it happens only
    from the statuses named, so a booking never reopens a closed lead or moves one backwards."""
    if lead.status in only_from and lead.status != target:
        await move(session, lead, target, actor_id=actor_id, now=now)


async def unsubscribe(session: AsyncSession, lead: Lead, *, now: dt.datetime) -> bool:
    """The person asked for no more marketing email. False when they already had (nothing changes)."""
    if lead.unsubscribed_at is not None:
        return False
    lead.unsubscribed_at = now
    session.add(LeadEvent(id=new_id(), created_at=now, lead_id=lead.id, actor_id=None, kind="unsubscribed"))
    await stop_emails(session, lead.id, reason="unsubscribed")
    return True


def may_follow_up(lead: Lead, consent: Consent | None) -> bool:
    """Follow-ups (reminders, check-ins, thank-yous) go only to a person who agreed to them and has not
    unsubscribed or asked not to be contacted."""
    if lead.unsubscribed_at is not None or lead.closed_reason == "do_not_contact":
        return False
    return consent is not None and consent.email_followup


async def stop_emails(session: AsyncSession, lead_id: uuid.UUID, *, reason: str) -> None:
    """Stop what has not gone out yet, in the caller's transaction.

    - Every reason cancels the pending follow-ups whose sequence stops on it (`sequences.yaml`).
    - `do_not_contact` also cancels every unsent email to the person (staff alerts still go).
    - `unsubscribed` also cancels unsent marketing (invitations, reminders); the answer to their screen and
      their booking emails are transactional and still go.
    The sender checks the same facts again just before each send.
    """
    await session.execute(cancel_statement(lead_id, reason, sequences_named=stopped_by(reason)))
    await session.execute(next_follow_up_statement(lead_id))
    if reason == "do_not_contact":
        spared: tuple[str, ...] = kinds.STAFF_KINDS
    elif reason == "unsubscribed":
        spared = (*kinds.TRANSACTIONAL_KINDS, *kinds.STAFF_KINDS)
    else:
        return
    await session.execute(
        update(Delivery)
        .where(Delivery.lead_id == lead_id, Delivery.status.in_(_UNSENT), Delivery.kind.not_in(spared))
        .values(status=DeliveryStatus.CANCELLED, last_error=f"stopped: {reason}", updated_at=utcnow())
    )


__all__ = ["allowed_next", "follow", "may_follow_up", "move", "stop_emails", "unsubscribe"]
