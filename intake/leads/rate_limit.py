"""A per-client limit on screen submissions: a public form that sends emails must not be a mail cannon.

The limit is Litestar's `RateLimitMiddleware` (its config, its cache key, its `RateLimit-*` headers and its 429),
with one hand-written fast path: the counts live in a dict of the process, read and written with no lock and no
store. Litestar's own `__call__` takes an anyio lock around an async store get and set for every request; each of
those yields to the event loop, and with 32 submissions in flight that cost 0.7 ms of CPU per submission (bench/
intake.py: 664 req/s with it, 1,173 without any limit, at 1.5 and 0.8 ms per request). With one event loop per
process, nothing can run between the read and the write here, so no lock is needed. A test holds this class to
the library's behaviour (tests/unit/test_rate_limit_fast_path.py).
"""

from __future__ import annotations

from time import time
from typing import Any

from litestar import Request
from litestar.exceptions import TooManyRequestsException
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.rate_limit import DURATION_VALUES, CacheObject, RateLimitConfig, RateLimitMiddleware
from litestar.types import ASGIApp, Middleware, Receive, Scope, Send

from intake.proxies import TrustedProxies
from intake.settings import IntakeSettings

_PURGE_EVERY = 1024
"""Forget windows that have ended once per this many requests, so the dict holds about a minute of clients."""


class InProcessRateLimit(RateLimitMiddleware):
    """Litestar's rate limiter with its counts in a dict of the process instead of a store."""

    def __init__(self, app: ASGIApp, config: RateLimitConfig) -> None:
        super().__init__(app, config)
        self._windows: dict[str, CacheObject] = {}
        self._seen = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request: Request[Any, Any, Any] = scope["litestar_app"].request_class(scope)
        if await self.should_check_request(request=request):
            window = self._count(self.cache_key_from_request(request), int(time()))
            if self.config.set_rate_limit_headers:
                send = self.create_send_wrapper(send=send, cache_object=window)
        await self.app(scope, receive, send)

    def _count(self, key: str, now: int) -> CacheObject:
        """The client's window with this request in it; TooManyRequestsException when it is full. The same
        arithmetic as `retrieve_cached_history` then `set_cached_history`, on a dict."""
        self._seen += 1
        if self._seen % _PURGE_EVERY == 0:
            self._windows = {k: w for k, w in self._windows.items() if w.reset > now}
        window = self._windows.get(key)
        if window is None or window.reset <= now:
            window = CacheObject(history=[], reset=now + DURATION_VALUES[self.unit])
        if len(window.history) >= self.max_requests:
            headers = self.create_response_headers(cache_object=window) if self.config.set_rate_limit_headers else None
            raise TooManyRequestsException(headers=headers)
        window.history = [now, *window.history]
        self._windows[key] = window
        return window


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
    return [DefineMiddleware(InProcessRateLimit, config=config)]


async def _is_submission(request: Request[Any, Any, Any]) -> bool:
    # Async on purpose: Litestar runs a plain function given as `check_throttle_handler` in a worker thread,
    # a thread hop for every request.
    return request.method == "POST"


__all__ = ["InProcessRateLimit", "submission_limit"]
