"""``create_service``: the Pusher service for a node, or None when no app is configured."""

from __future__ import annotations

from starlette.routing import BaseRoute

from hub.delivery.pusher import Webhooks
from hub.node.channels import PusherService
from hub.node.node import Node
from hub.ops import apps as apps_mod
from hub.ops.config import Settings
from hub.stores.channels.store import open_channels


def create_service(settings: Settings, node: Node) -> PusherService | None:
    apps = apps_mod.load(settings.pusher_apps, settings.pusher_apps_file)
    if not len(apps):
        return None
    channels, bus = open_channels(settings)
    webhooks = Webhooks.from_settings(settings, list(apps), node.id)
    return PusherService(settings, node, apps, channels, bus, webhooks)


def routes() -> list[BaseRoute]:
    from starlette.routing import WebSocketRoute

    from hub.api import pusher as http
    from hub.transport import pusher_asgi as ws

    return [WebSocketRoute("/app/{key}", ws.endpoint), *http.routes]
