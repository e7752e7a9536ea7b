"""The staff-alert webhook: a JSON POST signed with HMAC-SHA256 over the timestamp and the body."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from intake.messaging.mail.transport import PermanentFailure, TemporaryFailure


@dataclass(frozen=True, slots=True)
class WebhookCall:
    """A signed JSON POST for the sender to make instead of an email."""

    url: str
    secret: str
    payload: dict[str, Any]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def post_alert(url: str, secret: str, payload: dict[str, Any], timeout: float = 5.0) -> None:
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Intake-Timestamp": timestamp,
        "X-Intake-Signature": sign(secret, timestamp, body),
    }
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise TemporaryFailure(f"webhook connection: {type(exc).__name__}") from None
    if response.status_code >= 500 or response.status_code == 429:
        raise TemporaryFailure(f"webhook http {response.status_code}")
    if response.status_code >= 400:
        raise PermanentFailure(f"webhook http {response.status_code}")
