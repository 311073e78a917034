"""Credentials: HS256 user tokens and the admin key.

A user token is a JWT whose ``sub`` is the user id, with optional ``exp``, ``name``,
``username``, ``roles``, ``avatar`` and ``utcOffset`` claims. The admin key is compared in
constant time. Nothing here logs or echoes a credential.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field
from typing import Any

import jwt

from hub.store.base import Profile


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


def verify_token(secret: str, token: str) -> Claims:
    """Verify signature and ``exp``; raise :class:`AuthError` otherwise."""
    if not secret:
        raise AuthError("user tokens are not accepted: the hub has no secret")
    try:
        raw = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={"require": ["sub"], "verify_exp": True},
            leeway=2,
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"invalid token: {exc}") from None
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
        utc_offset=float(utc) if isinstance(utc, int | float) else 0.0,
        exp=float(raw["exp"]) if isinstance(raw.get("exp"), int | float) else None,
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
