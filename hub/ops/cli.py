"""The ``presence-hub`` command: serve, token, check (and more, see ``--help``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from hub.ops.config import ConfigError, Settings


def dev_keys_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "presence-hub" / "dev-keys.json"


def with_dev_keys(settings: Settings) -> Settings:
    """Missing keys come from the dev-keys file, else are generated and saved there (0600),
    so tokens survive a restart and ``presence-hub token`` can sign for the running hub."""
    if settings.secret and settings.admin_key:
        return settings
    path = dev_keys_path()
    saved: dict[str, str] = {}
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        saved = {}
    if saved.get("secret") and saved.get("admin_key"):
        return replace(
            settings,
            secret=settings.secret or saved["secret"],
            admin_key=settings.admin_key or saved["admin_key"],
            generated_keys=True,
        )
    generated = settings.with_generated_keys()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"secret": generated.secret, "admin_key": generated.admin_key}, f)
    except OSError:
        pass
    return generated


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    overrides: dict[str, Any] = {}
    for name in ("host", "port", "store"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return replace(settings, **overrides) if overrides else settings


def cmd_serve(args: argparse.Namespace) -> int:
    from hub.ops import logs, server
    from hub.ops.app import create_app

    settings = with_dev_keys(_settings(args))
    dev_pusher = settings.generated_keys and not (settings.pusher_apps or settings.pusher_apps_file)
    if dev_pusher:
        from hub.ops.apps import dev_apps

        settings = replace(settings, pusher_apps=dev_apps(settings.secret))
    workers = getattr(args, "workers", 1) or 1
    if workers > 1:
        from hub.ops.workers import run_workers

        return run_workers(settings, workers, sys.argv[1:] if args.argv is None else args.argv)
    logs.setup(settings.log_format, settings.log_level)
    app = create_app(settings)
    node = app.state.node
    url = f"http://{'localhost' if settings.host in ('127.0.0.1', '0.0.0.0') else settings.host}"
    url += f":{settings.port}/"
    print(f"Presence Hub on {url}  (store: {_redact(settings.store)}, node {node.id})", flush=True)
    if settings.generated_keys:
        print(
            "Development keys (set HUB_SECRET and HUB_ADMIN_KEY in production):\n"
            f"  HUB_SECRET={settings.secret}\n  HUB_ADMIN_KEY={settings.admin_key}\n"
            f"  saved in {dev_keys_path()}; `presence-hub token USER_ID` signs with them\n"
            "  Any origin may use the REST API and /static (set HUB_CORS_ORIGINS with your keys)",
            flush=True,
        )
        if dev_pusher:
            from hub.ops.apps import snippet

            app_id, key, secret = settings.pusher_apps.split(",")[0].split(":")
            host = url.split("//", 1)[1].rsplit(":", 1)[0]
            print(
                f"Pusher app for development: id {app_id}, key {key}, secret {secret}\n"
                f"  (HUB_PUSHER_APPS={settings.pusher_apps}); pusher-js:\n"
                f"{snippet(key, host, settings.port)}",
                flush=True,
            )
    elif settings.cors_origins:
        print(f"Cross-origin requests allowed from: {', '.join(settings.cors_origins)}", flush=True)
    server.run(app, settings, reuse_port=getattr(args, "reuse_port", False))
    return 0


def _redact(url: str) -> str:
    """A store URL without its password."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


def cmd_token(args: argparse.Namespace) -> int:
    from hub.model.auth import issue_token

    settings = with_dev_keys(Settings.from_env())
    roles = tuple(r for r in (args.roles or "").split(",") if r)
    ttl = None if args.ttl <= 0 else args.ttl
    print(
        issue_token(
            settings.secret,
            args.user,
            name=args.name or "",
            username=args.username or "",
            roles=roles,
            ttl_s=ttl,
        )
    )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from hub.ops.check import run_check

    return run_check(_settings(args), getattr(args, "url", None))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="presence-hub", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the hub")
    serve.add_argument("--host", help="bind address (HUB_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (PORT or HUB_PORT, default 8000)")
    serve.add_argument("--store", help="memory:// (default), redis://..., redis+cluster://...")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes on the one port, each its own node (needs a Redis store)",
    )
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(func=cmd_serve)

    token = sub.add_parser("token", help="print a user token signed with HUB_SECRET")
    token.add_argument("user", help="the user id (the token's sub)")
    token.add_argument("--name", help="display name claim")
    token.add_argument("--username", help="username claim")
    token.add_argument("--roles", help="comma-separated roles")
    token.add_argument("--ttl", type=float, default=86400, help="seconds; 0 = no expiry")
    token.set_defaults(func=cmd_token)

    check = sub.add_parser(
        "check", help="show the configuration, probe the store (and a running hub)"
    )
    check.add_argument("--store", help="store URL to probe")
    check.add_argument("--url", help="also probe a running hub: health, readiness, metrics")
    check.set_defaults(func=cmd_check)

    extra = _extra_commands()
    for name, (help_text, configure) in extra.items():
        configure(sub.add_parser(name, help=help_text))
    return parser


def _extra_commands() -> dict[str, Any]:
    """Commands living in their own modules (``watch``, ``bench``), when present."""
    found: dict[str, Any] = {}
    import importlib

    for name in ("watch",):
        try:
            module = importlib.import_module(f"hub.clients.{name}")
        except ImportError:
            continue
        found[name] = (module.HELP, module.configure)
    return found


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(f"presence-hub: {exc}", file=sys.stderr)
        return 2
    return result
