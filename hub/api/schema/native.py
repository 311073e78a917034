"""The hub's own endpoints: health, readiness, info and the development sign-in."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct


class Health(Struct):
    status: str = "ok"


class Ready(Struct, omit_defaults=True):
    """``ready`` with the store's round trip; ``draining`` or ``store unreachable`` (503)."""

    status: str
    store_ms: float | None = None
    node: str | None = None


class HubInfo(Struct):
    """What a client needs to know before it signs in."""

    dev: Annotated[bool, Meta(description="The development sign-in is on.")]
    window: Annotated[int | float, Meta(description="The changes window, in seconds.")]
    grace: Annotated[int | float, Meta(description="The offline grace, in seconds.")]
    tick_ms: int
    version: str
    node: str


class DevTokenBody(Struct):
    user: Annotated[str, Meta(description="1-64 letters, digits, _ . @ or -.")]
    name: Annotated[str, Meta(description="At most 100 characters.")] = ""


class DevToken(Struct):
    token: str


class HubError(Struct):
    """Every error of the hub's own endpoints."""

    error: str
    success: bool = False
