"""Valid request bodies to start from; each test changes only what it is about."""

from __future__ import annotations

import copy
import secrets
from typing import Any

ROUTINE_ANSWERS: dict[str, Any] = {
    "pain_area": ["lower_back"],
    "pain_now": 4,
    "duration": "under_24h",
    "injury": "none",
    "improving": "better",
    "age": 35,
}

EMERGENCY_ANSWERS: dict[str, Any] = {**ROUTINE_ANSWERS, "bladder_bowel": True, "pain_now": 8}


def submission(
    answers: dict[str, Any] | None = None,
    *,
    language: str = "en",
    email: str | None = None,
    phone: str | None = "(561) 555-0123",
    **contact: Any,
) -> dict[str, Any]:
    return {
        "language": language,
        "contact": {
            "first_name": "Rosa",
            "last_name": "Delgado",
            "email": email or f"rosa.{secrets.token_hex(4)}@example.com",
            "phone": phone,
            "preferred_contact": "email",
            "location": "boca_raton",
            "zip": "33431",
            **contact,
        },
        "consent": {"privacy": True, "email_followup": True, "sms": False},
        "answers": copy.deepcopy(answers if answers is not None else ROUTINE_ANSWERS),
    }
