"""Every model, re-exported so that `Base.metadata` knows all tables once this is imported."""

from intake.db.base import Base
from intake.db.models.audit import AuditEntry
from intake.db.models.booking import AvailabilityException, AvailabilityRule, Booking, LocationSettings
from intake.db.models.consent import Consent
from intake.db.models.delivery import Delivery
from intake.db.models.follow_up import FollowUp
from intake.db.models.heartbeat import WorkerHeartbeat
from intake.db.models.idempotency import IdempotencyRecord
from intake.db.models.lead import Lead, urgency_of
from intake.db.models.lead_event import LeadEvent
from intake.db.models.note import LeadNote
from intake.db.models.outbox import OutboxMessage
from intake.db.models.revoked_token import RevokedToken
from intake.db.models.screening import Screening
from intake.db.models.staff import StaffMember

__all__ = [
    "AuditEntry",
    "AvailabilityException",
    "AvailabilityRule",
    "Base",
    "Booking",
    "Consent",
    "Delivery",
    "FollowUp",
    "IdempotencyRecord",
    "Lead",
    "LeadEvent",
    "LeadNote",
    "LocationSettings",
    "OutboxMessage",
    "RevokedToken",
    "Screening",
    "StaffMember",
    "WorkerHeartbeat",
    "urgency_of",
]
