"""Sends one delivery at most once: claim it with a conditional UPDATE, send, record the outcome.

What a delivery says, and whether it must still go, is the domains' business: the sender is handed a composer per
kind and a stop rule (wired in `workers/context.py`), and knows nothing of screenings or bookings beyond their rows.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from typing import Any, Literal, cast

import structlog
from sqlalchemy import FromClause, Select, Table, and_, bindparam, exists, func, or_, select, update
from sqlalchemy.orm import Session

from intake.db import dialect
from intake.db.base import utcnow
from intake.db.models import Booking, Consent, Delivery, Lead, Screening
from intake.logs import error_summary
from intake.messaging.mail.transport import PermanentFailure, TemporaryFailure, Transport
from intake.messaging.webhook import WebhookCall, post_alert
from intake.settings import Settings
from intake.vocabulary import BookingStatus, DeliveryStatus

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Literal["sent", "skipped", "retry", "dead"]
    retry_in: float = 0.0


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter, so failed sends do not come back in one wave."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return random.uniform(ceiling / 2, ceiling)


_DELIVERIES = cast(Table, Delivery.__table__)
_LEADS = cast(Table, Lead.__table__)
_SCREENINGS = cast(Table, Screening.__table__)
_BOOKINGS = cast(Table, Booking.__table__)


# The statements are built once, with bound parameters: building and keying them per email cost more CPU
# than running them.
_CLAIM = (
    update(_DELIVERIES)
    .where(
        _DELIVERIES.c.id == bindparam("delivery_id"),
        # A failed delivery waits for its backoff (a duplicate publication must not retry it early); the
        # small tolerance absorbs a countdown that fires a moment before next_attempt_at.
        or_(
            _DELIVERIES.c.status == DeliveryStatus.QUEUED,
            and_(
                _DELIVERIES.c.status == DeliveryStatus.FAILED, _DELIVERIES.c.next_attempt_at <= bindparam("retry_due")
            ),
            and_(_DELIVERIES.c.status == DeliveryStatus.SENDING, _DELIVERIES.c.claimed_at < bindparam("lease_over")),
        ),
    )
    .values(
        status=DeliveryStatus.SENDING,
        claimed_at=bindparam("claim_at"),
        attempts=_DELIVERIES.c.attempts + 1,
        updated_at=bindparam("claim_at"),
    )
    .returning(*_DELIVERIES.c)
)


def _claim_params(delivery_id: uuid.UUID, now: dt.datetime, lease: float) -> dict[str, Any]:
    return {
        "delivery_id": delivery_id,
        "claim_at": now,
        "retry_due": now + dt.timedelta(seconds=2),
        "lease_over": now - dt.timedelta(seconds=lease),
    }


def claim(session: Session, delivery_id: uuid.UUID, now: dt.datetime, lease: float) -> Delivery | None:
    """Only one worker wins a delivery; one that died holding it is replaced after the lease.

    One statement, committed on its own (the sender's connection autocommits) before anything is sent;
    it returns the claimed row, or None when another worker has it or it is done."""
    row = session.connection().execute(_CLAIM, _claim_params(delivery_id, now, lease)).mappings().one_or_none()
    return None if row is None else Delivery(**row)


@dataclass(frozen=True, slots=True)
class Loaded:
    """What an email needs besides its delivery row, and the facts its stop checks read."""

    lead: Lead
    screening: Screening | None
    booking: Booking | None
    has_live_booking: bool
    consented: bool


def _with_the_rest(source: FromClause | None, lead_id: Any, screening_id: Any, ref_id: Any) -> Select[Any]:
    """`source`'s columns (the claimed delivery, if given), then the lead's, the screening's and the booking's
    (all None when there is none), whether the lead holds a live booking, and whether its latest consent
    allows follow-ups. Core, not ORM: the ORM's loading cost more CPU than the rest of a send."""
    live = _BOOKINGS.alias("live")
    has_live = exists().where(live.c.lead_id == _LEADS.c.id, live.c.status == BookingStatus.BOOKED)
    latest_consent = (
        select(Consent.email_followup)
        .where(Consent.lead_id == _LEADS.c.id)
        .order_by(Consent.created_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    base = _LEADS if source is None else source.join(_LEADS, _LEADS.c.id == lead_id)
    joined = base.outerjoin(_SCREENINGS, _SCREENINGS.c.id == screening_id).outerjoin(
        _BOOKINGS, _BOOKINGS.c.id == ref_id
    )
    columns = [] if source is None else list(source.c)
    stmt = select(*columns, *_LEADS.c, *_SCREENINGS.c, *_BOOKINGS.c, has_live, latest_consent).select_from(joined)
    return stmt.where(_LEADS.c.id == lead_id) if source is None else stmt


# `= NULL` matches nothing: a delivery without a screening or booking reads NULLs for it.
_LOAD = _with_the_rest(None, bindparam("lead_id"), bindparam("screening_id"), bindparam("ref_id"))
_CLAIMED = _CLAIM.cte("claimed")
_CLAIM_AND_LOAD = _with_the_rest(_CLAIMED, _CLAIMED.c.lead_id, _CLAIMED.c.screening_id, _CLAIMED.c.ref_id)


def _split(row: Sequence[Any], with_delivery: bool) -> tuple[Delivery | None, Loaded]:
    values = list(row)
    parts: list[dict[str, Any]] = []
    for table in ((_DELIVERIES,) if with_delivery else ()) + (_LEADS, _SCREENINGS, _BOOKINGS):
        width = len(table.c)
        parts.append(dict(zip(table.c.keys(), values[:width], strict=True)))
        values = values[width:]
    live_booking, consented = values
    delivery = Delivery(**parts.pop(0)) if with_delivery else None
    lead_row, screening_row, booking_row = parts
    loaded = Loaded(
        Lead(**lead_row),
        Screening(**screening_row) if screening_row["id"] is not None else None,
        Booking(**booking_row) if booking_row["id"] is not None else None,
        bool(live_booking),
        bool(consented),
    )
    return delivery, loaded


def load(session: Session, delivery: Delivery) -> Loaded:
    """What `delivery` needs, in one SELECT."""
    params = {"lead_id": delivery.lead_id, "screening_id": delivery.screening_id, "ref_id": delivery.ref_id}
    return _split(session.connection().execute(_LOAD, params).one(), with_delivery=False)[1]


def claim_and_load(
    session: Session, delivery_id: uuid.UUID, now: dt.datetime, lease: float
) -> tuple[Delivery, Loaded] | None:
    """`claim` then `load`. On PostgreSQL one statement: the claim's UPDATE in a CTE, run exactly once and
    committed with the statement (autocommit) before anything is sent."""
    connection = session.connection()
    if not dialect.is_postgresql(connection):
        delivery = claim(session, delivery_id, now, lease)
        return None if delivery is None else (delivery, load(session, delivery))
    row = connection.execute(_CLAIM_AND_LOAD, _claim_params(delivery_id, now, lease)).one_or_none()
    if row is None:
        return None
    delivery, loaded = _split(row, with_delivery=True)
    assert delivery is not None
    return delivery, loaded


_SENT = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == bindparam("delivery_id"))
    .values(
        status=DeliveryStatus.SENT,
        sent_at=bindparam("done_at"),
        last_error=None,
        next_attempt_at=None,
        updated_at=bindparam("done_at"),
    )
)


Compose = Callable[[Session, Delivery, Loaded, dt.datetime], Message | WebhookCall]
"""Builds what a delivery of one kind sends: an email, or a webhook call (the session reads more if it must)."""
StopRule = Callable[[Delivery, Loaded], str | None]
"""Why a delivery must not go after all (unsubscribed, booked, closed…), checked just before sending; or None."""


class DeliverySender:
    """Sends deliveries at most once each, on one database connection (autocommit: every statement is its
    own transaction, with no BEGIN or COMMIT round trips) and the transport's kept SMTP connection."""

    def __init__(
        self,
        sessionmaker: Callable[[], Session],
        transport: Transport,
        settings: Settings,
        *,
        composers: Mapping[str, Compose],
        stop_reason: StopRule,
    ):
        self._sessionmaker = sessionmaker
        self._transport = transport
        self._settings = settings
        self._composers = composers
        self._stop_reason = stop_reason

    def send(self, delivery_id: uuid.UUID) -> Outcome:
        return self.send_many([delivery_id])[0]

    def send_many(self, delivery_ids: Sequence[uuid.UUID]) -> list[Outcome]:
        """In turn, each one claimed, checked, sent and recorded on its own: a worker that dies in the
        middle of a batch leaves at most one delivery claimed (taken over after the lease), and a stop
        that comes while the batch runs holds back every delivery not yet claimed."""
        outcomes: list[Outcome] = []
        with self._sessionmaker() as session:
            for delivery_id in delivery_ids:
                # Rows are read with Core statements, fresh for each delivery: no identity map to go stale.
                outcomes.append(self._send_one(session, delivery_id))
        return outcomes

    def _send_one(self, session: Session, delivery_id: uuid.UUID) -> Outcome:
        now = utcnow()
        found = claim_and_load(session, delivery_id, now, self._settings.messaging.sending_lease)
        if found is None:
            return Outcome("skipped")
        delivery, loaded = found
        # Checked again here: the lead may have unsubscribed, booked or closed since this was queued.
        reason = self._stop_reason(delivery, loaded)
        if reason is not None:
            session.connection().execute(
                update(_DELIVERIES)
                .where(_DELIVERIES.c.id == delivery.id)
                .values(status=DeliveryStatus.CANCELLED, last_error=f"stopped: {reason}", updated_at=utcnow())
            )
            log.info("delivery.cancelled", delivery_id=str(delivery.id), kind=delivery.kind, reason=reason)
            return Outcome("skipped")
        try:
            self._dispatch(session, delivery, loaded, now)
        except TemporaryFailure as exc:
            return self._failed(session, delivery, str(exc), retryable=True)
        except PermanentFailure as exc:
            return self._failed(session, delivery, str(exc), retryable=False)
        except Exception as exc:
            # A bug or a broken template: counted like a temporary failure, so it ends dead, not in a loop.
            log.error("delivery.error", delivery_id=str(delivery.id), kind=delivery.kind, **error_summary(exc))
            return self._failed(session, delivery, f"error: {type(exc).__name__}", retryable=True)
        session.connection().execute(_SENT, {"delivery_id": delivery.id, "done_at": utcnow()})
        log.info("delivery.sent", delivery_id=str(delivery.id), kind=delivery.kind, attempts=delivery.attempts)
        return Outcome("sent")

    def _dispatch(self, session: Session, delivery: Delivery, loaded: Loaded, now: dt.datetime) -> None:
        compose = self._composers.get(delivery.kind)
        if compose is None:
            raise PermanentFailure(f"no composer for {delivery.kind}")
        made = compose(session, delivery, loaded, now)
        if isinstance(made, WebhookCall):
            post_alert(made.url, made.secret, made.payload)
        else:
            self._transport.send(made)

    def _failed(self, session: Session, delivery: Delivery, error: str, *, retryable: bool) -> Outcome:
        messaging = self._settings.messaging
        exhausted = delivery.attempts >= messaging.max_attempts
        dead = not retryable or exhausted
        delay = 0.0 if dead else backoff(delivery.attempts, messaging.retry_base, messaging.retry_max_delay)
        session.connection().execute(
            update(_DELIVERIES)
            .where(_DELIVERIES.c.id == delivery.id)
            .values(
                status=DeliveryStatus.DEAD if dead else DeliveryStatus.FAILED,
                last_error=error[:200],
                next_attempt_at=None if dead else utcnow() + dt.timedelta(seconds=delay),
            )
        )
        dead_total = (
            session.execute(
                select(func.count()).select_from(Delivery).where(Delivery.status == DeliveryStatus.DEAD)
            ).scalar_one()
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
