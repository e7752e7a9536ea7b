"""Route guards: which roles may use a route. Anonymous callers never get this far (401)."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import SecurityRequirement
from litestar.types import Guard

from intake.vocabulary import CAN_EXPORT

STAFF: list[SecurityRequirement] = [{"BearerToken": []}]
"""`security=` of every staff route: the OpenAPI document says which routes need the bearer token."""


def requires_role(*roles: str) -> Guard:
    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if connection.scope.get("method") == "OPTIONS":
            return  # answered by Litestar with the allowed methods; sign-in does not run for it
        if getattr(connection.user, "role", None) not in roles:
            raise PermissionDeniedException(f"This needs the role {' or '.join(roles)}.")

    return guard


admin_only = requires_role("admin")
can_export = requires_role(*CAN_EXPORT)
