"""Who is calling a REST endpoint: a user (by token) or the admin (by admin key).

Accepted credentials: ``X-Auth-Token`` + ``X-User-Id`` (Rocket.Chat style: a user token
whose ``sub`` is that id, or the admin key), ``Authorization: Bearer`` (admin key or user
token). Vendor modules add their own header names (``apikey``, body ``api_key``) by calling
:func:`from_admin_key`. Credentials never appear in logs or error messages.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from hub.model.auth import AuthError, Claims, bearer, is_admin_key, verify_token
from hub.ops.config import Settings


class Unauthorized(Exception):
    """401: a credential is missing or wrong (the message says which, never the value)."""


class Forbidden(Exception):
    """403: the caller is known but may not do this."""


@dataclass(frozen=True)
class Caller:
    user: str | None
    admin: bool
    claims: Claims | None = None

    def may_act_for(self, user: str) -> bool:
        return self.admin or self.user == user


def from_admin_key(settings: Settings, key: str | None, what: str) -> Caller:
    if not key:
        raise Unauthorized(f"missing {what}")
    if not is_admin_key(settings.admin_key, key):
        raise Unauthorized(f"wrong {what}")
    return Caller(user=None, admin=True)


def _user_token(settings: Settings, token: str) -> Caller:
    try:
        claims = verify_token(settings.secret, token)
    except AuthError as exc:
        raise Unauthorized(str(exc)) from None
    return Caller(user=claims.user, admin=False, claims=claims)


def authenticate(request: HTTPConnection, settings: Settings) -> Caller:
    """The caller of a native or Rocket.Chat endpoint, or :class:`Unauthorized`."""
    headers = request.headers
    token = headers.get("x-auth-token")
    user_id = headers.get("x-user-id")
    if token is not None or user_id is not None:
        if not token or not user_id:
            raise Unauthorized("X-Auth-Token and X-User-Id must be given together")
        if is_admin_key(settings.admin_key, token):
            return Caller(user=user_id, admin=True)
        caller = _user_token(settings, token)
        if caller.user != user_id:
            raise Unauthorized("X-User-Id does not match the token")
        return caller
    value = bearer(headers.get("authorization"))
    if value is None:
        raise Unauthorized(
            "missing credentials: X-Auth-Token + X-User-Id, or Authorization: Bearer"
        )
    if is_admin_key(settings.admin_key, value):
        return Caller(user=None, admin=True)
    return _user_token(settings, value)
