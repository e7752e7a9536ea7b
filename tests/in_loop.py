"""The app served in the test's own event loop, so that requests gathered there really run at the same time.

Litestar's AsyncTestClient hands each request to a portal thread and blocks the test's loop until it is
answered: requests "gathered" through it run one after the other. httpx's ASGI transport calls the app in
this loop instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from litestar.types import Receive, Scope, Send

from intake.app import create_app
from intake.settings import Settings


class InFlight:
    """Wraps the app and records how many requests it was handling at once: proof the overlap was real."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.now = 0
        self.most = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await self.app(scope, receive, send)
        finally:
            self.now -= 1


@asynccontextmanager
async def served_in_this_loop(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, InFlight]]:
    """Entered in the test itself: the app's lifespan must end in the task that started it."""
    app = create_app(settings)
    counter = InFlight(app)
    transport = httpx.ASGITransport(app=counter)
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://intake.test") as client:
        yield client, counter
