"""Housekeeping the sweep does: drop idempotency answers past their TTL and revoked tokens past expiry."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete
from sqlalchemy.orm import Session

from intake.db.base import utcnow
from intake.db.models import IdempotencyRecord, RevokedToken


def purge_expired(session: Session, *, idempotency_ttl_hours: int) -> tuple[int, int]:
    now = utcnow()
    with session.begin():
        cutoff = now - dt.timedelta(hours=idempotency_ttl_hours)
        answers = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
        tokens = session.execute(delete(RevokedToken).where(RevokedToken.expires_at < now))
    return int(getattr(answers, "rowcount", 0) or 0), int(getattr(tokens, "rowcount", 0) or 0)
