"""Helpers shared by the CometChat, Agora and iFlyChat modules: services, checks, params.

Each vendor shapes its own errors; what they share is how a request is read (query lists
in the three spellings clients use, strict booleans and integers whose errors name the
parameter, a body that is a JSON object or, for iFlyChat's PHP clients, a form) and how a
user token is checked against the registry (:func:`rest_gate`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import QueryParams
from starlette.requests import Request

from hub.admin import Admin
from hub.web.caller import Caller, Unauthorized
from hub.web.http import BadRequest

#: Largest request body the compatibility APIs read (a batch of 100 usernames fits easily).
MAX_BODY_BYTES = 256 * 1024


def admin_of(request: Request) -> Admin:
    """The node's admin service (registry, rooms, store)."""
    admin: Admin = request.app.state.admin
    return admin


def rest_gate(admin: Admin) -> Callable[[Caller], Awaitable[None]]:
    """``node.rest_gate``: refuse a user token whose user is deactivated (or unknown when
    auto-registration is off); the admin key always passes."""

    async def gate(caller: Caller) -> None:
        if caller.admin or caller.user is None:
            return
        reason = await admin.refusal(caller.user)
        if reason is not None:
            raise Unauthorized(reason)

    return gate


async def check_caller(request: Request, caller: Caller) -> None:
    """Run ``node.rest_gate`` for ``caller`` when the app set one."""
    gate = getattr(request.app.state.node, "rest_gate", None)
    if gate is not None:
        await gate(caller)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def query_list(params: QueryParams, name: str) -> list[str]:
    """``name=a,b``, ``name=a&name=b`` and ``name[]=a``: every non-empty value, in order."""
    raw = params.getlist(name) + params.getlist(f"{name}[]")
    out: list[str] = []
    for item in raw:
        out += [part.strip() for part in item.split(",") if part.strip()]
    return list(dict.fromkeys(out))


def parse_bool(value: str | None, name: str) -> bool | None:
    """``true``/``false`` (also 1/0, yes/no); None when absent; BadRequest otherwise."""
    if value is None or value == "":
        return None
    low = value.strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise BadRequest(f"{name} must be true or false, got {value!r}")


def parse_int(
    value: str | None, name: str, *, default: int, minimum: int, maximum: int | None = None
) -> int:
    """A whole number in range; the error names the parameter and the range."""
    if value is None or value == "":
        return default
    span = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number {span}, got {value!r}") from None
    if number < minimum or (maximum is not None and number > maximum):
        raise BadRequest(f"{name} must be {span}, got {number}")
    return number


async def body_map(request: Request) -> dict[str, Any]:
    """The body as a map: a JSON object, or a urlencoded form; {} when empty."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(f"body must be at most {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return {}
    content_type = request.headers.get("content-type", "")
    if "application/x-www-form-urlencoded" in content_type:
        try:
            return dict(parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True))
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("body is not a valid form") from None
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


async def body_json(request: Request) -> Any:
    """The body as any JSON value (an object or an array); BadRequest otherwise."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(f"body must be at most {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        raise BadRequest("body is required: a JSON object or array")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("body is not valid JSON") from None
