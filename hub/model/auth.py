"""Credentials: HS256 user tokens and the admin key.

A user token is a JWT whose ``sub`` is the user id, with optional ``exp``, ``name``,
``username``, ``roles``, ``avatar`` and ``utcOffset`` claims. The admin key is compared in
constant time. Nothing here logs or echoes a credential.
"""

from __future__ import annotations

import hmac
import math
import time
from dataclasses import dataclass, field
from typing import Any

import jwt

from hub.model.text import find_invalid
from hub.stores.presence.base import Profile

#: Seconds of clock skew tolerated on ``exp`` and ``nbf``.
LEEWAY_S = 2
#: The latest NumericDate accepted (the end of year 9999); later ones are malformed.
MAX_NUMERIC_DATE = 253_402_300_799


class AuthError(Exception):
    """A credential was missing, malformed, expired or wrong (the message says which)."""


@dataclass(frozen=True)
class Claims:
    """A verified user token."""

    user: str
    username: str = ""
    name: str = ""
    roles: tuple[str, ...] = ()
    avatar: str = ""
    utc_offset: float = 0.0
    exp: float | None = None
    # The other claims, for the registry's first-connect account (roles, tags, type, ...).
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def profile(self) -> Profile:
        return Profile(
            id=self.user,
            username=self.username or self.user,
            name=self.name or self.username or self.user,
            avatar=self.avatar,
            utc_offset=self.utc_offset,
        )


def issue_token(
    secret: str,
    user: str,
    *,
    name: str = "",
    username: str = "",
    roles: tuple[str, ...] = (),
    ttl_s: float | None = 24 * 3600,
    extra: dict[str, Any] | None = None,
) -> str:
    claims: dict[str, Any] = {"sub": user, "iat": int(time.time())}
    if ttl_s is not None:
        claims["exp"] = int(time.time() + ttl_s)
    if name:
        claims["name"] = name
    if username:
        claims["username"] = username
    if roles:
        claims["roles"] = list(roles)
    if extra:
        claims.update(extra)
    return jwt.encode(claims, secret, algorithm="HS256")


def _numeric_date(raw: dict[str, Any], claim: str) -> float | None:
    """A time claim as RFC 7519 defines it: a JSON number of seconds since the epoch.

    A numeric string (``"exp": "1796..."``), a boolean, a non-finite or absurd value is
    refused, so the expiry the hub enforces mid-session is the one that was verified."""
    if claim not in raw:
        return None
    value = raw[claim]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthError(f"invalid token: {claim} must be a number of seconds since the epoch")
    number = float(value)
    if not math.isfinite(number) or not 0 <= number <= MAX_NUMERIC_DATE:
        raise AuthError(f"invalid token: {claim} is out of range")
    return number


def verify_token(secret: str, token: str, *, now: float | None = None) -> Claims:
    """Verify signature, ``exp`` and ``nbf``; raise :class:`AuthError` otherwise.

    PyJWT checks the signature; the time claims are checked here, once, with one rule:
    each must be a JSON number (a numeric string is refused), and ``Claims.exp`` is the very
    value that was checked, which the websocket layer enforces mid-session. Every string of
    the claims must be valid Unicode (no lone surrogate)."""
    if not secret:
        raise AuthError("user tokens are not accepted: the hub has no secret")
    try:
        raw = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={
                "require": ["sub"],
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"invalid token: {exc}") from None
    invalid = find_invalid(raw)
    if invalid is not None:
        raise AuthError(f"invalid token: claim {invalid}")
    exp = _numeric_date(raw, "exp")
    nbf = _numeric_date(raw, "nbf")
    _numeric_date(raw, "iat")
    clock = time.time() if now is None else now
    if exp is not None and exp <= clock - LEEWAY_S:
        raise AuthError("token expired")
    if nbf is not None and nbf > clock + LEEWAY_S:
        raise AuthError("token not valid yet (nbf)")
    sub = raw.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 256:
        raise AuthError("invalid token: sub must be a non-empty user id")
    roles = raw.get("roles") or ()
    utc = raw.get("utcOffset", 0)
    return Claims(
        user=sub,
        username=str(raw.get("username") or ""),
        name=str(raw.get("name") or ""),
        roles=tuple(str(r) for r in roles) if isinstance(roles, list) else (),
        avatar=str(raw.get("avatar") or ""),
        utc_offset=float(utc) if isinstance(utc, int | float) and math.isfinite(utc) else 0.0,
        exp=exp,
        extra=raw,
    )


def is_admin_key(admin_key: str, candidate: str | None) -> bool:
    if not admin_key or not candidate:
        return False
    return hmac.compare_digest(admin_key.encode(), candidate.encode())


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
