"""The emails that follow a screening, and whether each must still go: the answer to the screen (seek care now, or
the booking invitation), the staff alerts, and the follow-up sequences. The worker's sender calls these by kind.
"""

from __future__ import annotations

import datetime as dt
from email.message import Message
from typing import Any

from sqlalchemy.orm import Session

from intake.booking.links import booking_url
from intake.db.models import Booking, Delivery, Lead, Screening
from intake.messaging import kinds
from intake.messaging.followups.schedule import follow_up_kinds, sequence_of_kind, stop_reason
from intake.messaging.mail.builder import EmailBuilder, add_unsubscribe, format_local, place_of
from intake.messaging.mail.transport import PermanentFailure
from intake.messaging.sending import Compose, Loaded
from intake.messaging.webhook import WebhookCall
from intake.screening import Assessment, Catalog, Route, Tier
from intake.settings import Settings


class FollowThroughEmails:
    def __init__(self, builder: EmailBuilder, settings: Settings, catalog: Catalog):
        self._builder = builder
        self._settings = settings
        self._catalog = catalog

    def composers(self) -> dict[str, Compose]:
        """The kinds this module writes, each with its composer."""
        found: dict[str, Compose] = {
            kinds.KIND_SEEK_CARE_NOW: self._answer,
            kinds.KIND_BOOKING_INVITATION: self._answer,
            kinds.KIND_STAFF_ALERT: self._staff_alert,
            kinds.KIND_STAFF_ALERT_WEBHOOK: self._staff_webhook,
        }
        found.update(dict.fromkeys(follow_up_kinds(), self._follow_up))
        return found

    @staticmethod
    def stop_reason(delivery: Delivery, loaded: Loaded) -> str | None:
        """Checked again just before sending: the lead may have unsubscribed, booked or closed since."""
        if delivery.kind in kinds.STAFF_KINDS:
            return None
        lead = loaded.lead
        if lead.closed_reason == "do_not_contact":
            return "do_not_contact"
        if delivery.kind in kinds.TRANSACTIONAL_KINDS:
            return None
        if delivery.kind in follow_up_kinds():
            return stop_reason(
                lead, delivery.kind, has_live_booking=loaded.has_live_booking, consented=loaded.consented
            )
        return "unsubscribed" if lead.unsubscribed_at is not None else None

    def _answer(self, _: Session, delivery: Delivery, loaded: Loaded, __: dt.datetime) -> Message:
        return self.patient_email(delivery, loaded.lead, _screening(delivery, loaded))

    def _follow_up(self, _: Session, delivery: Delivery, loaded: Loaded, __: dt.datetime) -> Message:
        return self.follow_up(delivery, loaded.lead, loaded.booking)

    def _staff_alert(self, _: Session, delivery: Delivery, loaded: Loaded, now: dt.datetime) -> Message:
        return self.staff_alert(delivery, loaded.lead, _screening(delivery, loaded), now)

    def _staff_webhook(self, _: Session, delivery: Delivery, loaded: Loaded, now: dt.datetime) -> WebhookCall:
        alerts = self._settings.alerts
        facts = alert_facts(loaded.lead, _screening(delivery, loaded), self._settings, now)
        return WebhookCall(alerts.webhook_url, alerts.webhook_secret, facts)

    def patient_email(self, delivery: Delivery, lead: Lead, screening: Screening) -> Message:
        lang = screening.language
        rule_set = self._catalog.get(screening.rule_set_version)
        assessment = Assessment(
            tier=Tier(screening.tier),
            route=Route(screening.route),
            score=screening.score,
            rule_codes=tuple(r["code"] for r in screening.reasons),
        )
        clinic = self._settings.clinic
        advice = rule_set.advice(assessment, lang, clinic_phone=clinic.phone, booking_url=clinic.booking_url)  # type: ignore[arg-type]
        unsubscribe_url = self._builder.unsubscribe_url(lead)
        subject, text, html = self._builder.render(
            delivery.kind,
            lang,
            {
                "first_name": lead.first_name,
                "advice": advice,
                "disclaimer": rule_set.disclaimer(lang),  # type: ignore[arg-type]
                "booking_url": booking_url(self._settings, lead.id),
                "unsubscribe_url": unsubscribe_url,
            },
        )
        message = self._builder.message(delivery, [lead.email], subject, text, html)
        if delivery.kind not in kinds.TRANSACTIONAL_KINDS:
            add_unsubscribe(message, unsubscribe_url)
        return message

    def follow_up(self, delivery: Delivery, lead: Lead, booking: Booking | None) -> Message:
        found = sequence_of_kind(delivery.kind)
        if found is None:
            raise ValueError(f"{delivery.kind} is not a follow-up")
        _, step = found
        lang = lead.language
        unsubscribe_url = self._builder.unsubscribe_url(lead)
        context: dict[str, Any] = {
            "first_name": lead.first_name,
            "booking_url": booking_url(self._settings, lead.id),
            "unsubscribe_url": unsubscribe_url,
            "when": format_local(booking.starts_at, lang, self._settings.clinic.timezone) if booking else "",
            "where": place_of(booking.location, lang, self._settings) if booking else "",
        }
        subject, text, html = self._builder.render(step.template, lang, context)
        message = self._builder.message(delivery, [lead.email], subject, text, html)
        add_unsubscribe(message, unsubscribe_url)
        return message

    def staff_alert(self, delivery: Delivery, lead: Lead, screening: Screening, now: dt.datetime) -> Message:
        subject, text, html = self._builder.render(
            delivery.kind, "en", alert_facts(lead, screening, self._settings, now)
        )
        return self._builder.message(delivery, list(self._settings.alerts.staff_emails), subject, text, html)


def _screening(delivery: Delivery, loaded: Loaded) -> Screening:
    if loaded.screening is None:
        raise PermanentFailure(f"{delivery.kind} needs a screening")
    return loaded.screening


def alert_facts(lead: Lead, screening: Screening, settings: Settings, now: dt.datetime) -> dict[str, Any]:
    """What a staff alert may say: ids, tier, speed to lead and a link. Never answers or contact details."""
    minutes = max(0, int((now - screening.created_at).total_seconds() // 60))
    return {
        "lead_id": str(lead.id),
        "tier": screening.tier,
        "minutes_since": minutes,
        "lead_url": f"{settings.app.public_base_url}/api/leads/{lead.id}",
    }


__all__ = ["FollowThroughEmails", "alert_facts"]
