"""Settings: the one place that reads the environment.

Every tunable of the hub lives in the frozen :class:`Settings`. ``Settings.from_env()``
reads ``HUB_*`` variables (fractional seconds accepted); the CLI overrides individual
fields with ``dataclasses.replace``. Nothing else in the package touches ``os.environ``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace


class ConfigError(ValueError):
    """A setting has a value the hub cannot use; the message names the variable."""


def _seconds(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """``*`` or comma-separated origins such as ``https://app.example:8443``."""
    raw = env.get(name) or ""
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    if "*" in origins:
        return ("*",)
    for origin in origins:
        scheme, sep, host = origin.partition("://")
        if scheme not in ("http", "https") or not sep or not host or "/" in host:
            raise ConfigError(
                f"{name} must be * or origins like https://app.example, got {origin!r}"
            )
    return origins


#: Statuses a webhook's event filter may name (``HUB_WEBHOOKS`` third part).
WEBHOOK_EVENTS = frozenset({"online", "away", "busy", "offline"})


@dataclass(frozen=True)
class WebhookEndpoint:
    """One ``HUB_WEBHOOKS`` entry: where to POST, the signing secret, the statuses sent
    (None: every change)."""

    url: str
    secret: str = field(repr=False)
    events: frozenset[str] | None = None


def parse_webhooks(raw: str) -> tuple[WebhookEndpoint, ...]:
    """``URL|SECRET[|EVENTS],...`` where EVENTS is ``*`` or statuses joined by ``+``
    (``online+offline``). Errors name the entry by position, never echo the secret."""
    out: list[WebhookEndpoint] = []
    for n, part in enumerate((p.strip() for p in raw.split(",")), start=1):
        if not part:
            continue
        fields = part.split("|")
        if len(fields) not in (2, 3):
            raise ConfigError(
                f"HUB_WEBHOOKS entry {n} must be URL|SECRET or URL|SECRET|EVENTS "
                f"({len(fields)} parts separated by | found)"
            )
        url, secret = fields[0].strip(), fields[1].strip()
        if not url.startswith(("http://", "https://")) or not url.split("://", 1)[1]:
            raise ConfigError(
                f"HUB_WEBHOOKS entry {n}: the URL must start with http:// or "
                f"https://, got {url.split('?')[0]!r}"
            )
        if not secret:
            raise ConfigError(f"HUB_WEBHOOKS entry {n}: the secret must not be empty")
        events: frozenset[str] | None = None
        if len(fields) == 3 and fields[2].strip() not in ("", "*"):
            events = frozenset(e.strip() for e in fields[2].split("+"))
            unknown = sorted(events - WEBHOOK_EVENTS)
            if unknown:
                raise ConfigError(
                    f"HUB_WEBHOOKS entry {n}: unknown event {unknown[0]!r} (use * or statuses "
                    f"joined by +: {', '.join(sorted(WEBHOOK_EVENTS))})"
                )
        if any(e.url == url for e in out):
            raise ConfigError(f"HUB_WEBHOOKS entry {n}: the same URL is listed twice")
        out.append(WebhookEndpoint(url, secret, events))
    return tuple(out)


@dataclass(frozen=True)
class Settings:
    """Everything the hub can be told; defaults are the documented ones."""

    store: str = "memory://"
    secret: str = ""
    admin_key: str = ""
    window_s: float = 600.0
    offline_grace_s: float = 5.0
    node_ttl_s: float = 10.0
    channel: str = "hub:presence"
    key_prefix: str = "hub:"
    tick_ms: int = 50
    host: str = "127.0.0.1"
    port: int = 8000
    node_id: str = field(default_factory=lambda: secrets.token_hex(6))
    outbox_frames: int = 256
    max_frame_bytes: int = 64 * 1024
    #: The one larger frame: a ``sub`` of a ``users`` scope (1 MiB: 10,000 ids of up to
    #: about 100 characters); every other frame is held to ``max_frame_bytes``.
    max_watchlist_bytes: int = 1024 * 1024
    hello_timeout_s: float = 5.0
    auto_register: bool = True
    log_format: str = "json"
    log_level: str = "info"
    rate_per_s: float = 50.0
    buckets: int = 0
    last_seen: str = "everyone"
    max_rooms_per_user: int = 100
    max_rooms: int = 100_000
    #: Above this many members a plain room ``sub`` is refused with ``limit`` (use
    #: ``counts`` or ``range``): no node loads a huge member set to list it.
    room_full_list_max: int = 10_000
    generated_keys: bool = False
    #: Origins allowed to call the REST API and load /static from another site
    #: (``HUB_CORS_ORIGINS``: comma-separated, or ``*``); with generated keys, any.
    cors_origins: tuple[str, ...] = ()
    webhooks: tuple[WebhookEndpoint, ...] = ()
    webhook_retry_s: float = 3600.0
    webhook_backoff_min_s: float = 0.5
    webhook_backoff_max_s: float = 60.0
    webhook_timeout_s: float = 10.0
    pusher_apps: str = ""
    pusher_apps_file: str = ""
    pusher_activity_timeout_s: float = 120.0

    @property
    def window_ms(self) -> int:
        return int(self.window_s * 1000)

    @property
    def grace_ms(self) -> int:
        return int(self.offline_grace_s * 1000)

    @property
    def node_ttl_ms(self) -> int:
        return int(self.node_ttl_s * 1000)

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        """The CORS origins in effect: everything (``*``) on a development hub."""
        return ("*",) if self.generated_keys else self.cors_origins

    @property
    def sweep_s(self) -> float:
        """How often a node heartbeats and sweeps: a third of the TTL, at most 1 s."""
        return max(0.05, min(1.0, self.node_ttl_s / 3))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        log_format = env.get("HUB_LOG_FORMAT", "json")
        if log_format not in ("json", "text"):
            raise ConfigError(f"HUB_LOG_FORMAT must be json or text, got {log_format!r}")
        last_seen = (env.get("HUB_LAST_SEEN") or "everyone").strip().lower()
        if last_seen not in ("everyone", "nobody"):
            raise ConfigError(f"HUB_LAST_SEEN must be everyone or nobody, got {last_seen!r}")
        return cls(
            store=env.get("HUB_STORE") or "memory://",
            secret=env.get("HUB_SECRET", ""),
            admin_key=env.get("HUB_ADMIN_KEY", ""),
            window_s=_seconds(env, "HUB_WINDOW_S", 600.0, minimum=1.0),
            offline_grace_s=_seconds(env, "HUB_OFFLINE_GRACE_S", 5.0),
            node_ttl_s=_seconds(env, "HUB_NODE_TTL_S", 10.0, minimum=0.2),
            channel=env.get("HUB_CHANNEL") or "hub:presence",
            key_prefix=env.get("HUB_KEY_PREFIX") or "hub:",
            tick_ms=_int(env, "HUB_TICK_MS", 50),
            host=env.get("HUB_HOST") or "127.0.0.1",
            port=_int(env, "PORT", _int(env, "HUB_PORT", 8000, minimum=0), minimum=0),
            node_id=env.get("HUB_NODE_ID") or secrets.token_hex(6),
            outbox_frames=_int(env, "HUB_OUTBOX_FRAMES", 256),
            max_frame_bytes=_int(env, "HUB_MAX_FRAME_BYTES", 64 * 1024, minimum=256),
            max_watchlist_bytes=_int(env, "HUB_MAX_WATCHLIST_BYTES", 1024 * 1024, minimum=256),
            hello_timeout_s=_seconds(env, "HUB_HELLO_TIMEOUT_S", 5.0, minimum=0.1),
            auto_register=_flag(env, "HUB_AUTO_REGISTER", True),
            log_format=log_format,
            log_level=(env.get("HUB_LOG_LEVEL") or "info").lower(),
            rate_per_s=_seconds(env, "HUB_RATE_PER_S", 50.0, minimum=1.0),
            buckets=_int(env, "HUB_BUCKETS", 0, minimum=0),
            last_seen=last_seen,
            cors_origins=_origins(env, "HUB_CORS_ORIGINS"),
            max_rooms_per_user=_int(env, "HUB_MAX_ROOMS_PER_USER", 100, minimum=0),
            max_rooms=_int(env, "HUB_MAX_ROOMS", 100_000, minimum=0),
            room_full_list_max=_int(env, "HUB_ROOM_FULL_LIST_MAX", 10_000, minimum=0),
            webhooks=parse_webhooks(env.get("HUB_WEBHOOKS", "")),
            webhook_retry_s=_seconds(env, "HUB_WEBHOOK_RETRY_S", 3600.0),
            webhook_backoff_min_s=_seconds(env, "HUB_WEBHOOK_BACKOFF_MIN_S", 0.5, minimum=0.01),
            webhook_backoff_max_s=_seconds(env, "HUB_WEBHOOK_BACKOFF_MAX_S", 60.0, minimum=0.01),
            webhook_timeout_s=_seconds(env, "HUB_WEBHOOK_TIMEOUT_S", 10.0, minimum=0.1),
            pusher_apps=env.get("HUB_PUSHER_APPS", ""),
            pusher_apps_file=env.get("HUB_PUSHER_APPS_FILE", ""),
            pusher_activity_timeout_s=_seconds(
                env, "HUB_PUSHER_ACTIVITY_TIMEOUT_S", 120.0, minimum=1.0
            ),
        )

    def with_generated_keys(self) -> Settings:
        """Fill a missing secret or admin key with a random one (development mode)."""
        if self.secret and self.admin_key:
            return self
        return replace(
            self,
            secret=self.secret or secrets.token_urlsafe(32),
            admin_key=self.admin_key or secrets.token_urlsafe(24),
            generated_keys=True,
        )
