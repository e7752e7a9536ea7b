"""Creating deliveries: a row per email or webhook call to send, each with one dedupe key of one format.

The key is `lead:about:kind`, where `about` is what the message is about: the screening (its answer and staff
alerts), the booking (its confirmation or cancellation), or `followup` (a step of a follow-up sequence, once per
lead). A unique index on it makes a second attempt to create the same message a no-op: that is what lets every
task run twice safely.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, cast

from sqlalchemy import Executable

from intake.db import dialect
from intake.db.base import new_id
from intake.db.models import Delivery
from intake.messaging import kinds
from intake.messaging.publishing.publication import Publication
from intake.vocabulary import DeliveryStatus

FOLLOW_UP = "followup"
"""The `about` of follow-up steps: each kind goes to a lead once, however often its sequence starts."""


def dedupe_key(lead_id: uuid.UUID, about: uuid.UUID | str, kind: str) -> str:
    return f"{lead_id}:{about}:{kind}"


def new_delivery(
    *,
    lead_id: uuid.UUID,
    kind: str,
    about: uuid.UUID | str,
    queue: str,
    now: dt.datetime,
    screening_id: uuid.UUID | None = None,
    ref_id: uuid.UUID | None = None,
    channel: str = "email",
) -> dict[str, Any]:
    """The values of a queued delivery; insert them with `insert_new` in the caller's transaction."""
    return {
        "id": new_id(),
        "created_at": now,
        "updated_at": now,
        "lead_id": lead_id,
        "screening_id": screening_id,
        "ref_id": ref_id,
        "kind": kind,
        "channel": channel,
        "queue": queue,
        "dedupe_key": dedupe_key(lead_id, about, kind),
        "status": DeliveryStatus.QUEUED,
        "attempts": 0,
    }


def insert_new(bind: dialect.Bind, rows: list[dict[str, Any]]) -> Executable:
    """Insert what is not there yet, returning (id, queue) of the rows it added: the ones to publish."""
    return cast(
        Executable,
        dialect.insert(bind, Delivery)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(Delivery.id, Delivery.queue),
    )


def publication(delivery_id: uuid.UUID, queue: str) -> Publication:
    """What to publish after commit so that a worker sends the delivery."""
    return Publication(kinds.TASK_SEND_DELIVERY, delivery_id, queue)


__all__ = ["FOLLOW_UP", "dedupe_key", "insert_new", "new_delivery", "publication"]
