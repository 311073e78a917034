"""Small helpers shared by the REST modules: JSON bodies, times, errors."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse


class BadRequest(Exception):
    """400: the message names the field that was wrong."""


def iso_ms(ms: int) -> str:
    """Milliseconds since the epoch -> ``2019-05-22T12:11:45.392Z`` (JavaScript's toISOString)."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_iso(value: str) -> int | None:
    """An ISO 8601 time -> ms since the epoch; None when unparseable.

    Seconds, milliseconds and the zone are optional; no zone means UTC."""
    text = value.strip()
    if not text:
        return None
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def etag(value: str) -> str:
    """A short stable tag for an avatar, in the spirit of Rocket.Chat's avatarETag."""
    return hashlib.sha1(value.encode()).hexdigest()[:17] if value else ""


async def json_body(request: Request, *, allow_array: bool = False) -> Any:
    """The request's JSON body (an object, or an array when allowed); BadRequest otherwise."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if isinstance(body, dict) or (allow_array and isinstance(body, list)):
        return body
    raise BadRequest("body must be a JSON object" + (" or array" if allow_array else ""))


def json_response(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)
