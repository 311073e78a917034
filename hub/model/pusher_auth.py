"""Pusher's signatures (pure): channel auth, user authentication and HTTP API request signing.

Channel auth: ``<key>:<hex HMAC-SHA256(secret, "socket_id:channel[:channel_data]")>``.
User authentication (``pusher:signin``): ``<key>:<hex HMAC-SHA256(secret,
"socket_id::user::user_data")>``.
HTTP API: the HMAC-SHA256, keyed by the app secret, of ``METHOD\\nPATH\\nQUERY`` where QUERY
is every parameter but ``auth_signature``, keys lower-cased, sorted, ``key=value`` joined
with ``&`` (values as sent, not re-encoded); a body comes with its hex MD5 as ``body_md5``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

#: How far ``auth_timestamp`` may be from the server clock, seconds.
MAX_SKEW_S = 600


class SignatureError(ValueError):
    """A request or subscription whose signature does not verify; the message says why."""


def sign(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def channel_auth(
    key: str, secret: str, socket_id: str, channel: str, channel_data: str | None = None
) -> str:
    """What an auth endpoint returns as ``auth`` for this socket and channel."""
    message = f"{socket_id}:{channel}"
    if channel_data is not None:
        message += f":{channel_data}"
    return f"{key}:{sign(secret, message)}"


def check_channel_auth(
    key: str,
    secret: str,
    socket_id: str,
    channel: str,
    auth: object,
    channel_data: str | None = None,
) -> None:
    _check(key, auth, channel_auth(key, secret, socket_id, channel, channel_data))


def user_auth(key: str, secret: str, socket_id: str, user_data: str) -> str:
    """What a user authentication endpoint returns as ``auth`` for this socket and user."""
    return f"{key}:{sign(secret, f'{socket_id}::user::{user_data}')}"


def check_user_auth(key: str, secret: str, socket_id: str, auth: object, user_data: str) -> None:
    """Verify a ``pusher:signin``; :class:`SignatureError` naming what failed."""
    _check(key, auth, user_auth(key, secret, socket_id, user_data))


def _check(key: str, auth: object, expected: str) -> None:
    if not isinstance(auth, str) or ":" not in auth:
        raise SignatureError("auth must be a string key:signature")
    given_key, _, _ = auth.partition(":")
    if given_key != key:
        raise SignatureError("auth was signed for another app key")
    # Bytes: compare_digest refuses a str that is not ASCII, and a client may send one.
    if not hmac.compare_digest(expected.encode(), auth.encode("utf-8", "surrogatepass")):
        raise SignatureError("invalid signature")


def string_to_sign(method: str, path: str, params: Mapping[str, str]) -> str:
    query = "&".join(
        f"{k}={v}"
        for k, v in sorted(
            (k.lower(), v) for k, v in params.items() if k.lower() != "auth_signature"
        )
    )
    return f"{method.upper()}\n{path}\n{query}"


def sign_request(secret: str, method: str, path: str, params: Mapping[str, str]) -> str:
    return sign(secret, string_to_sign(method, path, params))


def body_md5(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def check_request(
    key: str,
    secret: str,
    method: str,
    path: str,
    params: Mapping[str, str],
    body: bytes,
    now_s: float,
) -> None:
    """Verify an HTTP API request; :class:`SignatureError` naming what failed."""
    if params.get("auth_key") != key:
        raise SignatureError("auth_key is missing or not this app's key")
    if params.get("auth_version", "1.0") != "1.0":
        raise SignatureError("auth_version must be 1.0")
    try:
        stamp = int(params.get("auth_timestamp", ""))
    except ValueError:
        raise SignatureError("auth_timestamp must be a whole number of seconds") from None
    if abs(now_s - stamp) > MAX_SKEW_S:
        raise SignatureError(
            f"auth_timestamp is more than {MAX_SKEW_S} s away from the server time"
        )
    if body and params.get("body_md5") != body_md5(body):
        raise SignatureError("body_md5 does not match the body")
    signature = params.get("auth_signature", "")
    expected = sign_request(secret, method, path, params)
    if not hmac.compare_digest(expected, signature):
        raise SignatureError("invalid signature")
