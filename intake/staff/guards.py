"""Route guards: which roles may use a route. Anonymous callers never get this far (401)."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from intake.vocabulary import CAN_EXPORT


def requires_role(*roles: str) -> Guard:
    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if getattr(connection.user, "role", None) not in roles:
            raise PermissionDeniedException(f"This needs the role {' or '.join(roles)}.")

    return guard


admin_only = requires_role("admin")
can_export = requires_role(*CAN_EXPORT)
