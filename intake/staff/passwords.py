"""Passwords: argon2id hashes (argon2-cffi) made and checked off the event loop, and which passwords are allowed.

Hashing and verifying cost about 100 ms of CPU each. On the event loop, one login flood stalled every
request of the process (GET /health went from 0.4 ms to a median of 238 ms under 16 login loops), so they
run in a small pool of threads of their own (argon2 releases the GIL while it works). The pool has fewer
threads than the machine has cores: a flood of sign-ins queues there, and the event loop keeps a core.

The rules follow NIST SP 800-63B (section 3.1.1.2): at least 12 characters and no composition rules
(no "a digit and a symbol"). A password is refused when it is on a list of commonly used passwords,
when it is that easy to guess anyway (a common password with a few digits added, a keyboard row, one
character or a short run repeated, only spaces), or when it contains the email's name part.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified against when the email is unknown, so that a miss costs the same time as a wrong password.
_DUMMY = _hasher.hash("not-a-real-password")

MIN_LENGTH = 12
GUESSES_AT_LEAST = 10**8
"""Fewer estimated guesses than this (zxcvbn's estimate; its score 3 starts here) and a password is refused
as too easy to guess. Every test and README password, and a few unrelated words, pass by orders of magnitude."""
_ESTIMATE_CHARACTERS = 100
"""zxcvbn's time grows fast with length; past this many characters a password is long enough as it is."""

_POOL = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1), thread_name_prefix="argon2")

T = TypeVar("T")


async def _off_loop(function: Callable[..., T], *args: object) -> T:
    return await asyncio.get_running_loop().run_in_executor(_POOL, functools.partial(function, *args))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def hashed(password: str) -> str:
    """`hash_password` in the argon2 threads: the event loop goes on serving meanwhile."""
    return await _off_loop(hash_password, password)


async def verified(stored_hash: str | None, password: str) -> bool:
    """`verify_password` in the argon2 threads (an unknown account is verified against a dummy hash)."""
    return await _off_loop(verify_password, stored_hash, password)


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


def password_problem(password: str, email: str | None = None) -> str | None:
    """Why this password may not be used (for the account with this email), or None."""
    if len(password) < MIN_LENGTH:
        return f"A password needs at least {MIN_LENGTH} characters."
    if not password.strip():
        return "A password cannot be only spaces."
    folded = password.casefold()
    if _repeats(folded.replace(" ", "")):
        return "A password cannot be one character or a short group of characters repeated."
    local = (email or "").rpartition("@")[0].casefold()
    if len(local) >= 3 and local in folded:
        return "A password cannot contain the email address (or its part before the @)."
    if _is_common(folded):
        return "This password is on a list of commonly used passwords; choose another."
    user_inputs = [w for w in (email or "", local, "empower", "fitness", "clinic", "intake") if w]
    if _guesses(password[:_ESTIMATE_CHARACTERS], user_inputs) < GUESSES_AT_LEAST:
        return (
            "This password is too easy to guess (a common word or password with a few characters added, a "
            "keyboard pattern or a sequence). A few unrelated words make a strong one."
        )
    return None


async def problem_of(password: str, email: str | None = None) -> str | None:
    """`password_problem` off the event loop (the guess estimate takes milliseconds of CPU)."""
    return await _off_loop(password_problem, password, email)


def _repeats(text: str) -> bool:
    """One character, or a group of up to four, repeated throughout ("aaaa…", "abab…", "1234 1234 …")."""
    if not text:
        return True
    return any(len(text) % size == 0 and text == text[:size] * (len(text) // size) for size in range(1, 5))


@functools.cache
def _common() -> frozenset[str]:
    # zxcvbn's ranked list of the passwords people use most (from leaked password sets), loaded on first use.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def _is_common(folded: str) -> bool:
    return folded in _common() or folded.replace(" ", "") in _common()


def _guesses(password: str, user_inputs: list[str]) -> float:
    from zxcvbn import zxcvbn

    return float(zxcvbn(password, user_inputs=user_inputs)["guesses"])
