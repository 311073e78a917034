"""Text that enters the hub: valid Unicode of a bounded length, or a clear error."""

from __future__ import annotations


class BadText(ValueError):
    """A string that is not valid Unicode (a lone surrogate) or is too long; names the field."""


def check_text(value: str, field: str, max_len: int) -> str:
    """``value`` when it encodes as UTF-8 and has at most ``max_len`` characters."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadText(f"{field} must be valid Unicode text (it holds a lone surrogate)") from None
    if len(value) > max_len:
        raise BadText(f"{field} must be at most {max_len} characters, got {len(value)}")
    return value
