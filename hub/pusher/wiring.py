"""``create_service``: the Pusher service for a node, or None when no app is configured."""

from __future__ import annotations

from starlette.routing import BaseRoute

from hub.config import Settings
from hub.delivery.core import Backoff
from hub.node import Node
from hub.pusher import apps as apps_mod
from hub.pusher.channels import open_channels
from hub.pusher.delivery import retry_time
from hub.pusher.service import PusherService
from hub.pusher.webhooks import Webhooks


def create_service(settings: Settings, node: Node) -> PusherService | None:
    apps = apps_mod.load(settings.pusher_apps, settings.pusher_apps_file)
    if not len(apps):
        return None
    channels, bus = open_channels(settings)
    webhooks = Webhooks(
        list(apps), retry_s=retry_time(settings.webhook_retry_s),
        backoff=Backoff(settings.webhook_backoff_min_s, settings.webhook_backoff_max_s),
        timeout_s=settings.webhook_timeout_s,
    )  # fmt: skip
    return PusherService(settings, node, apps, channels, bus, webhooks)


def routes() -> list[BaseRoute]:
    from starlette.routing import WebSocketRoute

    from hub.pusher import http, ws

    return [WebSocketRoute("/app/{key}", ws.endpoint), *http.routes]
