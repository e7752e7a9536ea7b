"""Sends one delivery at most once: claim it with a conditional UPDATE, send, record the outcome."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import structlog
from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from intake.db.base import utcnow
from intake.db.models import Booking, Consent, Delivery, Lead, Screening
from intake.logs import error_summary
from intake.messaging import followups, kinds
from intake.messaging.emails import EmailBuilder, alert_facts
from intake.messaging.transport import PermanentFailure, TemporaryFailure, Transport
from intake.messaging.webhook import post_alert
from intake.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Literal["sent", "skipped", "retry", "dead"]
    retry_in: float = 0.0


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter, so failed sends do not come back in one wave."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return random.uniform(ceiling / 2, ceiling)


def _claimable(now: dt.datetime, lease: float) -> object:
    # A failed delivery waits for its backoff (a duplicate publication must not retry it early); the
    # small tolerance absorbs a countdown that fires a moment before next_attempt_at.
    return or_(
        Delivery.status == "queued",
        and_(Delivery.status == "failed", Delivery.next_attempt_at <= now + dt.timedelta(seconds=2)),
        and_(Delivery.status == "sending", Delivery.claimed_at < now - dt.timedelta(seconds=lease)),
    )


def claim(session: Session, delivery_id: uuid.UUID, now: dt.datetime, lease: float) -> Delivery | None:
    """Only one worker wins a delivery; one that died holding it is replaced after the lease.

    One statement, committed on its own (the sender's connection autocommits) before anything is sent;
    it returns the claimed row, or None when another worker has it or it is done."""
    stmt = (
        update(Delivery)
        .where(Delivery.id == delivery_id, _claimable(now, lease))  # type: ignore[arg-type]
        .values(status="sending", claimed_at=now, attempts=Delivery.attempts + 1, updated_at=now)
        .returning(Delivery)
        .execution_options(synchronize_session=False)
    )
    return session.scalars(stmt).one_or_none()


@dataclass(frozen=True, slots=True)
class Loaded:
    """What an email needs besides its delivery row, and the facts its stop checks read, from one query."""

    lead: Lead
    screening: Screening | None
    booking: Booking | None
    has_live_booking: bool
    consented: bool


def load(session: Session, delivery: Delivery) -> Loaded:
    """The lead, the screening and booking the delivery refers to (if any), whether the lead holds a live
    booking and whether its latest consent allows follow-ups: one SELECT."""
    live = aliased(Booking)
    has_live = exists().where(live.lead_id == Lead.id, live.status == "booked")
    latest_consent = (
        select(Consent.email_followup)
        .where(Consent.lead_id == Lead.id)
        .order_by(Consent.created_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    stmt = (
        select(Lead, Screening, Booking, has_live, latest_consent)
        .select_from(Lead)
        .outerjoin(Screening, Screening.id == delivery.screening_id)
        .outerjoin(Booking, Booking.id == delivery.ref_id)
        .where(Lead.id == delivery.lead_id)
    )
    lead, screening, booking, live_booking, consented = session.execute(stmt).one()
    return Loaded(lead, screening, booking, bool(live_booking), bool(consented))


class DeliverySender:
    """Sends deliveries at most once each, on one database connection (autocommit: every statement is its
    own transaction, with no BEGIN or COMMIT round trips) and the transport's kept SMTP connection."""

    def __init__(
        self,
        sessionmaker: Callable[[], Session],
        transport: Transport,
        builder: EmailBuilder,
        settings: Settings,
    ):
        self._sessionmaker = sessionmaker
        self._transport = transport
        self._builder = builder
        self._settings = settings

    def send(self, delivery_id: uuid.UUID) -> Outcome:
        return self.send_many([delivery_id])[0]

    def send_many(self, delivery_ids: Sequence[uuid.UUID]) -> list[Outcome]:
        """In turn, each one claimed, checked, sent and recorded on its own: a worker that dies in the
        middle of a batch leaves at most one delivery claimed (taken over after the lease), and a stop
        that comes while the batch runs holds back every delivery not yet claimed."""
        outcomes: list[Outcome] = []
        with self._sessionmaker() as session:
            for delivery_id in delivery_ids:
                outcomes.append(self._send_one(session, delivery_id))
                session.expunge_all()  # the next delivery reads its lead afresh, even the same lead
        return outcomes

    def _send_one(self, session: Session, delivery_id: uuid.UUID) -> Outcome:
        now = utcnow()
        delivery = claim(session, delivery_id, now, self._settings.messaging.sending_lease)
        if delivery is None:
            return Outcome("skipped")
        loaded = load(session, delivery)
        # Checked again here: the lead may have unsubscribed, booked or closed since this was queued.
        reason = self._stop_reason(delivery, loaded)
        if reason is not None:
            session.execute(
                update(Delivery)
                .where(Delivery.id == delivery.id)
                .values(status="cancelled", last_error=f"stopped: {reason}", updated_at=utcnow())
            )
            log.info("delivery.cancelled", delivery_id=str(delivery.id), kind=delivery.kind, reason=reason)
            return Outcome("skipped")
        try:
            self._dispatch(delivery, loaded, now)
        except TemporaryFailure as exc:
            return self._failed(session, delivery, str(exc), retryable=True)
        except PermanentFailure as exc:
            return self._failed(session, delivery, str(exc), retryable=False)
        except Exception as exc:
            # A bug or a broken template: counted like a temporary failure, so it ends dead, not in a loop.
            log.error("delivery.error", delivery_id=str(delivery.id), kind=delivery.kind, **error_summary(exc))
            return self._failed(session, delivery, f"error: {type(exc).__name__}", retryable=True)
        sent_at = utcnow()
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery.id)
            .values(status="sent", sent_at=sent_at, last_error=None, next_attempt_at=None, updated_at=sent_at)
        )
        log.info("delivery.sent", delivery_id=str(delivery.id), kind=delivery.kind, attempts=delivery.attempts)
        return Outcome("sent")

    @staticmethod
    def _stop_reason(delivery: Delivery, loaded: Loaded) -> str | None:
        if delivery.kind in kinds.STAFF_KINDS:
            return None
        lead = loaded.lead
        if lead.closed_reason == "do_not_contact":
            return "do_not_contact"
        if delivery.kind in kinds.TRANSACTIONAL_KINDS:
            return None
        if delivery.kind in followups.follow_up_kinds():
            return followups.stop_reason(
                lead, delivery.kind, has_live_booking=loaded.has_live_booking, consented=loaded.consented
            )
        return "unsubscribed" if lead.unsubscribed_at is not None else None

    def _dispatch(self, delivery: Delivery, loaded: Loaded, now: dt.datetime) -> None:
        lead, screening, booking = loaded.lead, loaded.screening, loaded.booking
        if delivery.kind == kinds.KIND_BOOKING_CONFIRMATION:
            if booking is None:
                raise PermanentFailure("booking_confirmation needs a booking")
            from intake.booking.emails import confirmation_email

            self._transport.send(confirmation_email(self._builder, delivery, lead, booking, self._settings))
            return
        if delivery.kind in followups.follow_up_kinds():
            self._transport.send(self._builder.follow_up(delivery, lead, booking))
            return
        if screening is None:
            raise PermanentFailure(f"{delivery.kind} needs a screening")
        if delivery.kind == kinds.KIND_STAFF_ALERT_WEBHOOK:
            alerts = self._settings.alerts
            post_alert(alerts.webhook_url, alerts.webhook_secret, alert_facts(lead, screening, self._settings, now))
        elif delivery.kind == kinds.KIND_STAFF_ALERT:
            self._transport.send(self._builder.staff_alert(delivery, lead, screening, now))
        else:
            self._transport.send(self._builder.patient_email(delivery, lead, screening))

    def _failed(self, session: Session, delivery: Delivery, error: str, *, retryable: bool) -> Outcome:
        messaging = self._settings.messaging
        exhausted = delivery.attempts >= messaging.max_attempts
        dead = not retryable or exhausted
        delay = 0.0 if dead else backoff(delivery.attempts, messaging.retry_base, messaging.retry_max_delay)
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery.id)
            .values(
                status="dead" if dead else "failed",
                last_error=error[:200],
                next_attempt_at=None if dead else utcnow() + dt.timedelta(seconds=delay),
            )
        )
        dead_total = (
            session.execute(select(func.count()).select_from(Delivery).where(Delivery.status == "dead")).scalar_one()
            if dead
            else 0
        )
        if dead:
            log.warning(
                "delivery.dead",
                delivery_id=str(delivery.id),
                kind=delivery.kind,
                attempts=delivery.attempts,
                error=error,
                reason="permanent" if not retryable else "retries exhausted",
                dead_total=dead_total,
            )
            return Outcome("dead")
        log.info(
            "delivery.retry",
            delivery_id=str(delivery.id),
            kind=delivery.kind,
            attempts=delivery.attempts,
            error=error,
            retry_in=round(delay, 2),
        )
        return Outcome("retry", delay)
