"""Which passwords staff may choose (NIST SP 800-63B: length, a common-password list, no composition rules)."""

from __future__ import annotations

import pytest

from intake.staff.passwords import hash_password, password_problem, verified

EMAIL = "maria.lopez@clinic.example.com"


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short one", "at least 12"),
        (" " * 12, "only spaces"),
        ("\t \t \t \t \t \t ", "only spaces"),
        ("aaaaaaaaaaaa", "repeated"),
        ("abababababab", "repeated"),
        ("123123123123", "repeated"),
        ("password1234", "commonly used"),
        ("qwertyuiop123", "commonly used"),
        ("Password12345", "easy to guess"),
        ("123456789012", "easy to guess"),
        (EMAIL, "email"),
        ("Maria.Lopez-2024!", "email"),
        ("iloveyouiloveyou", "easy to guess"),
    ],
)
def test_weak_passwords_are_refused_with_a_reason(password: str, why: str) -> None:
    problem = password_problem(password, EMAIL)
    assert problem is not None and why in problem, problem


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",
        "a long passphrase here",
        "seven amber kites over the dune",
        "tz8#Kq!v0Lw2",  # random characters need no words
        "no digits or symbols needed at all",  # no composition rules
    ],
)
def test_long_unguessable_passwords_are_accepted(password: str) -> None:
    assert password_problem(password, EMAIL) is None


async def test_verification_runs_in_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 costs about 100 ms of CPU: never on the event loop's thread."""
    import threading

    import intake.staff.passwords as passwords

    stored = hash_password("correct horse battery staple")
    seen: list[str] = []
    verify = passwords.verify_password

    def spy(stored_hash: str | None, password: str) -> bool:
        seen.append(threading.current_thread().name)
        return verify(stored_hash, password)

    monkeypatch.setattr(passwords, "verify_password", spy)
    assert await verified(stored, "correct horse battery staple")
    assert not await verified(stored, "not the right one at all")
    assert len(seen) == 2 and all(name.startswith("argon2") for name in seen), seen
