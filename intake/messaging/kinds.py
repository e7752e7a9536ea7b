"""Names shared by the API and the workers: queues, delivery kinds, task names."""

from __future__ import annotations

ALERTS_QUEUE = "alerts"
"""Urgent work (seek-care-now emails and staff alerts): a queue no booking email can hold up."""
DEFAULT_QUEUE = "intake"

TOPIC_ROUTE_SCREENING = "route_screening"

KIND_SEEK_CARE_NOW = "seek_care_now"
KIND_BOOKING_INVITATION = "booking_invitation"
KIND_STAFF_ALERT = "staff_alert"
KIND_STAFF_ALERT_WEBHOOK = "staff_alert_webhook"
STAFF_KINDS = (KIND_STAFF_ALERT, KIND_STAFF_ALERT_WEBHOOK)
KIND_BOOKING_CONFIRMATION = "booking_confirmation"
KIND_BOOKING_CANCELLATION = "booking_cancellation"
BOOKING_KINDS = (KIND_BOOKING_CONFIRMATION, KIND_BOOKING_CANCELLATION)
# Sent whatever the person's marketing choices: the answer to their screen, and their booking.
TRANSACTIONAL_KINDS = (KIND_SEEK_CARE_NOW, KIND_BOOKING_CONFIRMATION, KIND_BOOKING_CANCELLATION)
TASK_CLAIM_FOLLOW_UPS = "intake.claim_follow_ups"

TASK_ROUTE_SCREENING = "intake.route_screening"
TASK_SEND_DELIVERY = "intake.send_delivery"
TASK_SEND_DELIVERIES = "intake.send_deliveries"
"""A batch of delivery ids (follow-ups), each sent at most once on its own; a retry is a send_delivery task."""
TASK_SWEEP = "intake.sweep"
