"""What the REST apps are built with: passed to each app's constructor, never looked up."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from hub.api.caller import Caller, Unauthorized, authenticate
from hub.node.admin import Admin
from hub.node.node import Node
from hub.node.queries import Queries
from hub.ops.config import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    node: Node
    admin: Admin
    queries: Queries

    async def caller(self, request: HTTPConnection) -> Caller:
        """The caller by its credentials, refused when the REST check says so (a user token
        of a deactivated user, or of an unknown one with auto-registration off)."""
        caller = authenticate(request, self.settings)
        gate = self.node.rest_gate
        if gate is not None and caller.user is not None and not caller.admin:
            reason = await gate(caller.user)
            if reason is not None:
                raise Unauthorized(reason)
        return caller
