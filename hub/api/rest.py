"""The hub's own endpoints: health, readiness, info and the development sign-in; and the
error mapping of every path that no vendor API claims (JSON, never plain text)."""

from __future__ import annotations

import re
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub import __version__
from hub.api.body import read_json
from hub.api.http import BadRequest, NotFound, PayloadTooLarge, reply
from hub.api.schema import native as m
from hub.api.services import Services
from hub.api.spec import Operation
from hub.model.auth import issue_token
from hub.stores.presence.base import StoreUnavailable

_USER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
TAG = "Hub"


class HubApi:
    """``/healthz``, ``/readyz``, ``/api/v1/hub.info`` and ``/api/v1/dev.token``."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.node = services.node

    async def healthz(self, request: Request) -> Response:
        """The process is up."""
        return reply(m.Health())

    async def readyz(self, request: Request) -> Response:
        """The store answers and the node is not draining."""
        if self.node.draining:
            return reply(m.Ready(status="draining"), 503)
        started = time.monotonic()
        try:
            await self.node.store.now()
        except StoreUnavailable:
            return reply(m.Ready(status="store unreachable"), 503)
        latency = round((time.monotonic() - started) * 1000, 2)
        return reply(m.Ready(status="ready", store_ms=latency, node=self.node.id))

    async def info(self, request: Request) -> Response:
        """What a client needs to know before it signs in."""
        s = self.services.settings
        return reply(m.HubInfo(dev=s.generated_keys, window=s.window_s,
                               grace=s.offline_grace_s, tick_ms=s.tick_ms,
                               version=__version__, node=self.node.id))  # fmt: skip

    async def dev_token(self, request: Request) -> Response:
        """A user token for the live page's sign-in; only when the hub generated its keys."""
        settings = self.services.settings
        if not settings.generated_keys:
            raise NotFound("dev sign-in is off: the hub was given its keys")
        body = await read_json(request, m.DevTokenBody)
        if not _USER_ID.match(body.user):
            raise BadRequest("user must be 1-64 letters, digits, _ . @ or -")
        if len(body.name) > 100:
            raise BadRequest("name must be a string of at most 100 characters")
        token = issue_token(settings.secret, body.user, name=body.name or body.user,
                            username=body.user)  # fmt: skip
        return reply(m.DevToken(token=token))

    def routes(self) -> list[Route]:
        return [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
        ]

    def api_v1_routes(self) -> list[Route]:
        """The hub's own paths under ``/api/v1``: they join the app mounted there, so a
        wrong method on them is a 405 like any other path of that prefix."""
        return [
            Route("/hub.info", self.info, methods=["GET"]),
            Route("/dev.token", self.dev_token, methods=["POST"]),
        ]


def _failure(status: int, message: str) -> Response:
    return reply(m.HubError(error=message), status)


async def _bad_request(request: Request, exc: Exception) -> Response:
    return _failure(400, str(exc))


async def _too_large(request: Request, exc: Exception) -> Response:
    return _failure(413, str(exc))


async def _not_found(request: Request, exc: Exception) -> Response:
    return _failure(404, str(exc))


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    elif exc.status_code == 404:
        message = f"no such path: {request.url.path}"
    else:
        message = str(exc.detail)
    response = _failure(exc.status_code, message)
    response.headers.update(exc.headers or {})
    return response


async def _crash(request: Request, exc: Exception) -> Response:
    return _failure(500, "internal error (logged on the hub)")


HANDLERS: dict[Any, Any] = {
    Exception: _crash,
    BadRequest: _bad_request,
    PayloadTooLarge: _too_large,
    NotFound: _not_found,
    HTTPException: _http,
}

OPERATIONS = [
    Operation("get", "/healthz", "healthz", "The process is up", TAG, {200: m.Health}),
    Operation("get", "/readyz", "readyz", "The store answers and the node is not draining",
              TAG, {200: m.Ready, 503: m.Ready}),
    Operation("get", "/api/v1/hub.info", "hubInfo",
              "What a client needs to know before it signs in", TAG, {200: m.HubInfo}),
    Operation("post", "/api/v1/dev.token", "devToken",
              "A user token for the development sign-in (only with generated keys)", TAG,
              {200: m.DevToken, 400: m.HubError, 404: m.HubError, 413: m.HubError},
              body=m.DevTokenBody),
]  # fmt: skip
