"""``create_service``: the Pusher wire of a node, or None when no app is configured."""

from __future__ import annotations

from starlette.routing import BaseRoute, WebSocketRoute

from hub.delivery.pusher import PusherWebhooks
from hub.node.channels import ChannelService
from hub.node.node import Node
from hub.node.watchlists import Watchlists
from hub.ops import apps as apps_mod
from hub.ops.config import Settings
from hub.stores.channels import open_channels


def create_service(settings: Settings, node: Node) -> ChannelService | None:
    apps = apps_mod.load(settings.pusher_apps, settings.pusher_apps_file)
    if not len(apps):
        return None
    webhooks = PusherWebhooks.from_settings(settings, list(apps), node.id)
    watchlists = Watchlists(node.store.users, settings.tick_ms / 1000)
    node.on_batch(watchlists.on_batch)
    node.on_recover(watchlists.on_recover)
    service = ChannelService(settings, node, apps, open_channels(settings), webhooks, watchlists)
    node.upkeeps.append(service)
    return service


def routes() -> list[BaseRoute]:
    from hub.api import pusher as http
    from hub.transport.asgi import websocket_endpoint

    return [WebSocketRoute("/app/{key}", websocket_endpoint), *http.routes]
