"""A per-client limit on screen submissions: a public form that sends emails must not be a mail cannon."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.types import Middleware

from intake.proxies import TrustedProxies
from intake.settings import IntakeSettings


def submission_limit(settings: IntakeSettings) -> list[Middleware]:
    """Middleware for the intake routes: `rate_limit_per_minute` submissions per client address.

    The address is the connection's peer, or the client that a proxy in `FORWARDED_ALLOW_IPS` (none by
    default) names in X-Forwarded-For. Counts live in the process's memory: each API process counts its own.
    Reading the questionnaire is never limited.
    """
    if settings.rate_limit_per_minute <= 0:
        return []
    proxies = TrustedProxies(settings.trusted_proxies)

    def client_of(request: Request[Any, Any, Any]) -> str:
        peer = request.client.host if request.client else None
        return proxies.client(peer, ",".join(request.headers.getall("x-forwarded-for", [])))

    config = RateLimitConfig(
        rate_limit=("minute", settings.rate_limit_per_minute),
        check_throttle_handler=_is_submission,
        store="intake_submissions",
        identifier_for_request=client_of,
    )
    return [config.middleware]


def _is_submission(request: Request[Any, Any, Any]) -> bool:
    return request.method == "POST"


__all__ = ["submission_limit"]
