"""Messaging: the outbox, deliveries (emails and webhooks), their templates and transports."""
