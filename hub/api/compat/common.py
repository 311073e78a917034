"""What the vendor apps share in reading a request: query lists in the three spellings
clients use, and strict booleans and integers whose errors name the parameter."""

from __future__ import annotations

import time

from starlette.datastructures import QueryParams

from hub.api.http import BadRequest


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
