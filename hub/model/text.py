"""Text that enters the hub must be valid Unicode: pure checks, no I/O.

JSON lets a client send a lone UTF-16 surrogate (``"\\ud800"``); Python holds it as a
``str`` that cannot be encoded to UTF-8, so it would fail later, far from its source: in a
msgpack encoder inside the fan-out, in the Redis client, in a JSON response. Every entry point
(websocket frames, token claims, REST bodies and queries, registry writes) refuses such text
up front with an error naming the field, and nothing changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class InvalidText(ValueError):
    """A string that is not valid Unicode; ``field`` names where it was."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


#: How deep :func:`find_invalid` follows nested maps and lists before it gives up on a value.
MAX_DEPTH = 64


def invalid_at(value: str) -> int | None:
    """The index of the first character that cannot be encoded as UTF-8 (a lone
    surrogate), or None when ``value`` is valid Unicode text."""
    if value.isascii():
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def is_valid(value: str) -> bool:
    return invalid_at(value) is None


def problem(field_name: str, value: str) -> str | None:
    """The error message for ``value`` in ``field_name``, or None when it is valid."""
    at = invalid_at(value)
    if at is None:
        return None
    return (
        f"{field_name} must be valid Unicode text: it holds a lone surrogate "
        f"(U+{ord(value[at]):04X}) at position {at}"
    )


def check_valid(value: str, field_name: str) -> str:
    """``value`` unchanged, or :class:`InvalidText` (a ValueError) naming ``field_name``."""
    message = problem(field_name, value)
    if message is not None:
        raise InvalidText(field_name, message)
    return value


def check_all(value: Any, field_name: str) -> None:
    """Raise :class:`InvalidText` when any string inside ``value`` (a map, a list, a
    string) is not valid Unicode; the message names its path under ``field_name``."""
    message = find_invalid(value, field_name)
    if message is not None:
        raise InvalidText(field_name, message)


def _all_valid(value: Any, depth: int) -> bool:
    if isinstance(value, str):
        return invalid_at(value) is None
    if depth > MAX_DEPTH:
        return False
    if isinstance(value, Mapping):
        return all(
            _all_valid(key, depth + 1) and _all_valid(item, depth + 1)
            for key, item in value.items()
        )
    if isinstance(value, list | tuple):
        return all(_all_valid(item, depth + 1) for item in value)
    return True


def find_invalid(value: Any, path: str = "", depth: int = 0) -> str | None:
    """The error message for the first invalid string (key or value) anywhere in a decoded
    JSON or msgpack value, naming its path (``users[2]``, ``metadata.nick``), or None.

    Values nested deeper than :data:`MAX_DEPTH` are reported as too deep. The common case
    (everything valid) is one walk that builds no paths; paths are built only to report."""
    if depth == 0 and _all_valid(value, 0):
        return None
    if isinstance(value, str):
        return problem(path or "value", value)
    if depth > MAX_DEPTH:
        return f"{path or 'value'} is nested too deeply (more than {MAX_DEPTH} levels)"
    if isinstance(value, Mapping):
        for key, item in value.items():
            name = f"{path}.{key}" if path and isinstance(key, str) else str(key)
            if isinstance(key, str) and invalid_at(key) is not None:
                return problem(f"a key of {path or 'the map'}", key)
            found = find_invalid(item, name if isinstance(key, str) else path, depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = find_invalid(item, f"{path or 'value'}[{index}]", depth + 1)
            if found is not None:
                return found
    return None


#: The REST layer's name for the same error (a ValueError naming the field).
BadText = InvalidText


def check_text(value: str, field_name: str, max_len: int) -> str:
    """``value`` when it is valid Unicode of at most ``max_len`` characters, else
    :class:`InvalidText` naming ``field_name``."""
    check_valid(value, field_name)
    if len(value) > max_len:
        raise InvalidText(
            field_name, f"{field_name} must be at most {max_len} characters, got {len(value)}"
        )
    return value
