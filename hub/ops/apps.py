"""Pusher apps: ``HUB_PUSHER_APPS`` (``id:key:secret,...``) or ``HUB_PUSHER_APPS_FILE``
(a JSON list of ``{"id", "key", "secret", "client_events", "member_limit",
"subscription_count", "webhooks"}``).

Parsing is pure but for reading the file; every mistake is a :class:`ConfigError` naming
the variable and the app.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.ops.config import ConfigError

#: Members per presence channel unless an app says otherwise (Pusher's own cap is 100).
DEFAULT_MEMBER_LIMIT = 10_000
WEBHOOK_EVENTS = frozenset(
    {"channel_occupied", "channel_vacated", "member_added", "member_removed", "client_event",
     "cache_miss", "subscription_count"}
)  # fmt: skip
_FIELDS = frozenset(
    {"id", "key", "secret", "client_events", "member_limit", "subscription_count", "webhooks"}
)
_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


@dataclass(frozen=True)
class Webhook:
    url: str
    event_types: frozenset[str] = WEBHOOK_EVENTS


@dataclass(frozen=True)
class App:
    id: str
    key: str
    secret: str
    client_events: bool = True
    member_limit: int = DEFAULT_MEMBER_LIMIT
    webhooks: tuple[Webhook, ...] = field(default=())
    #: Subscribers of public and private channels are told how many there are
    #: (``pusher_internal:subscription_count``), and ``subscription_count`` webhooks go out.
    subscription_count: bool = False

    def counts(self, channel: str) -> bool:
        """Whether ``channel``'s subscription count is told (never on presence channels,
        as Pusher)."""
        return self.subscription_count and not channel.startswith("presence-")


class Apps:
    """The configured apps, by key (the websocket path) and by id (the HTTP API path)."""

    def __init__(self, apps: list[App]) -> None:
        self.by_key = {a.key: a for a in apps}
        self.by_id = {a.id: a for a in apps}
        if len(self.by_key) != len(apps) or len(self.by_id) != len(apps):
            raise ConfigError("Pusher apps must have distinct ids and distinct keys")

    def __iter__(self) -> Any:
        return iter(self.by_id.values())

    def __len__(self) -> int:
        return len(self.by_id)


def parse_env(value: str, name: str = "HUB_PUSHER_APPS") -> list[App]:
    apps: list[App] = []
    for n, item in enumerate(p.strip() for p in value.split(",")):
        if not item:
            continue
        parts = item.split(":")
        if len(parts) != 3 or not all(parts):
            raise ConfigError(f"{name}: app #{n + 1} must be id:key:secret")
        apps.append(_check(App(parts[0], parts[1], parts[2]), name))
    return apps


def _check(app: App, where: str) -> App:
    for label, value in (("id", app.id), ("key", app.key)):
        if not _ID.match(value):
            raise ConfigError(
                f"{where}: app {label} {value!r} must be 1-64 letters, digits, _ . or -"
            )
    if len(app.secret) < 8:
        raise ConfigError(f"{where}: the secret of app {app.id!r} must be at least 8 characters")
    return app


def parse_file(path: str, name: str = "HUB_PUSHER_APPS_FILE") -> list[App]:
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{name}: {path} is not JSON: {exc}") from None
    if not isinstance(raw, list):
        raise ConfigError(f"{name}: {path} must hold a JSON list of apps")
    return [_app(item, n, name) for n, item in enumerate(raw)]


def _app(item: Any, n: int, name: str) -> App:
    where = f"{name}: app #{n + 1}"
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be an object")
    unknown = set(item) - _FIELDS
    if unknown:
        raise ConfigError(f"{where} has unknown fields: {', '.join(sorted(unknown))}")
    for f in ("id", "key", "secret"):
        if not isinstance(item.get(f), str | int) or isinstance(item.get(f), bool):
            raise ConfigError(f"{where} needs {f} (a string)")
    client_events = item.get("client_events", True)
    if not isinstance(client_events, bool):
        raise ConfigError(f"{where}: client_events must be true or false")
    limit = item.get("member_limit", DEFAULT_MEMBER_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"{where}: member_limit must be a whole number of at least 1")
    counts = item.get("subscription_count", False)
    if not isinstance(counts, bool):
        raise ConfigError(f"{where}: subscription_count must be true or false")
    hooks = item.get("webhooks", [])
    if not isinstance(hooks, list):
        raise ConfigError(f"{where}: webhooks must be a list")
    webhooks = tuple(_webhook(h, f"{where} webhook #{i + 1}") for i, h in enumerate(hooks))
    app = App(
        str(item["id"]), str(item["key"]), str(item["secret"]), client_events, limit, webhooks,
        counts,
    )  # fmt: skip
    return _check(app, where)


def _webhook(item: Any, where: str) -> Webhook:
    if not isinstance(item, dict) or not isinstance(item.get("url"), str):
        raise ConfigError(f"{where} needs a url")
    url: str = item["url"]
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: url must start with http:// or https://")
    types = item.get("event_types", sorted(WEBHOOK_EVENTS))
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise ConfigError(f"{where}: event_types must be a list of names")
    bad = set(types) - WEBHOOK_EVENTS
    if bad:
        raise ConfigError(
            f"{where}: unknown event types {', '.join(sorted(bad))} "
            f"(known: {', '.join(sorted(WEBHOOK_EVENTS))})"
        )
    return Webhook(url, frozenset(types))


def load(apps_env: str, apps_file: str) -> Apps:
    """The apps from both settings (either may be empty)."""
    apps = parse_env(apps_env) if apps_env else []
    if apps_file:
        apps += parse_file(apps_file)
    return Apps(apps)


def dev_apps(hub_secret: str) -> str:
    """A development app derived from the hub's (development) secret, so it stays the same
    across restarts: ``HUB_PUSHER_APPS`` text."""
    import hashlib
    import hmac

    def derive(label: str, size: int) -> str:
        return hmac.new(hub_secret.encode(), label.encode(), hashlib.sha256).hexdigest()[:size]

    return f"1:dev-{derive('pusher-key', 16)}:{derive('pusher-secret', 32)}"


def snippet(key: str, host: str, port: int) -> str:
    """The pusher-js lines that connect a page to this hub."""
    return (
        f'  const pusher = new Pusher("{key}", {{\n'
        f'    wsHost: "{host}", wsPort: {port}, forceTLS: false,\n'
        '    enabledTransports: ["ws"], cluster: "mt1",\n'
        '    channelAuthorization: { endpoint: "/broadcasting/auth" },  // your app\'s\n'
        "  });"
    )
