"""Small helpers shared by the REST modules: the errors each vendor app maps, times, replies.

Handlers raise these; each vendor sub-app has one exception handler per class that shapes
the answer as that vendor does (see ``hub.api.compat``)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.responses import Response


class BadRequest(Exception):
    """400: the message names the field that was wrong; ``error_type`` for Rocket.Chat."""

    def __init__(self, message: str, error_type: str | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type


class NotFound(Exception):
    """404: the user, room or path is unknown."""


class NotServed(Exception):
    """501: an endpoint of a vendor's API that is messaging, not presence."""


class PayloadTooLarge(Exception):
    """413: the body is over the limit (the message says the limit)."""


def reply(model: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A msgspec model (or plain data) as a JSON response."""
    return Response(
        msgspec.json.encode(model),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


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
