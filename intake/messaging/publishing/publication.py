"""What the API and the workers hand a broker: a task name, the id of the row it works on, and its queue."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Publication:
    """Published after commit; the row is the truth, so publishing it twice is harmless."""

    task: str
    ref: uuid.UUID
    queue: str


__all__ = ["Publication"]
