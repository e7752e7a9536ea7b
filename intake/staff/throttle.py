"""How often one client address, and one account, may try to sign in: a minute's budget each, then a wait.

Litestar's rate limiter keys by client only (it cannot see the email in the body) and keeps a list of every
request's time per key; this counts attempts per fixed one-minute window, in this process's memory. With
several API processes each counts its own: the database's lockout (`LOGIN_LOCKOUT_THRESHOLD`) is the limit
that holds across them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 60.0
_PRUNE_ABOVE = 10_000
"""Windows kept before the ended ones are dropped (a flood from many addresses or of many emails)."""


@dataclass(slots=True)
class _Window:
    ends: float
    attempts: int


class LoginThrottle:
    def __init__(self, per_address: int, per_account: int, clock: Callable[[], float] = time.monotonic):
        """`per_address` and `per_account` attempts a minute; 0 turns that limit off."""
        self._limits = {"address": per_address, "account": per_account}
        self._clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}

    def attempt(self, *, address: str, account: str) -> int | None:
        """Count a sign-in attempt; None if it may go ahead, else the seconds until it may (Retry-After).

        The address is checked first, and an attempt it refuses is not counted against the account.
        """
        now = self._clock()
        if len(self._windows) > _PRUNE_ABOVE:
            self._windows = {key: w for key, w in self._windows.items() if w.ends > now}
        for kind, key in (("address", address), ("account", account)):
            limit = self._limits[kind]
            if limit <= 0:
                continue
            window = self._windows.get((kind, key))
            if window is None or window.ends <= now:
                window = self._windows[(kind, key)] = _Window(now + WINDOW_SECONDS, 0)
            if window.attempts >= limit:
                return max(1, math.ceil(window.ends - now))
            window.attempts += 1
        return None


__all__ = ["WINDOW_SECONDS", "LoginThrottle"]
