"""Every model, re-exported so that `Base.metadata` knows all tables once this is imported."""

from intake.db.base import Base
from intake.db.models.consent import Consent
from intake.db.models.delivery import Delivery
from intake.db.models.idempotency import IdempotencyRecord
from intake.db.models.lead import Lead
from intake.db.models.outbox import OutboxMessage
from intake.db.models.screening import Screening

__all__ = ["Base", "Consent", "Delivery", "IdempotencyRecord", "Lead", "OutboxMessage", "Screening"]
