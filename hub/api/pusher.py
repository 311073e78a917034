"""The Pusher HTTP API at ``/apps/{app_id}/...``, with Pusher's request signing.

``POST events``, ``POST batch_events``, ``GET channels``, ``GET channels/{name}``,
``GET channels/{name}/users`` and ``POST users/{id}/terminate_connections``. A missing,
wrong or stale signature is 401; bad input is 400 with a message naming the problem and
changes nothing.

Events may go to ``#server-to-user-<id>`` (the SDKs' ``sendToUser``): every connection
signed in as that user, on every node. An event's ``info`` (``subscription_count``,
``user_count``) asks for the attributes of the channels it went to, counted across every
node after it was published: ``{"channels": {name: {...}}}`` for ``POST events``, one
object per event (``{"batch": [...]}``) for ``POST batch_events``; ``user_count`` is given
for presence channels only.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.model.pusher_auth import SignatureError, check_request
from hub.node.channels import ChannelService
from hub.ops.apps import App
from hub.stores.presence.base import StoreUnavailable
from hub.wire import pusher as p

#: Pusher's limits on a trigger.
MAX_CHANNELS = 100
MAX_BATCH = 10
#: The attributes an event's ``info`` may ask for.
EVENT_INFO = frozenset({"subscription_count", "user_count"})


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def _authorized(request: Request) -> tuple[ChannelService, App, bytes]:
    service: ChannelService = request.app.state.pusher
    if "app_id" in request.path_params:
        app = service.apps.by_id.get(request.path_params["app_id"])
    else:
        # PyPI's SDK sends terminate_connections without /apps/{id}: the key names the app.
        app = service.apps.by_key.get(request.query_params.get("auth_key", ""))
    if app is None:
        raise ApiError(404, "unknown app id")
    body = await request.body()
    params = dict(request.query_params)
    try:
        check_request(
            app.key, app.secret, request.method, request.url.path, params, body, time.time()
        )
    except SignatureError as exc:
        raise ApiError(401, f"authentication failed: {exc}") from None
    return service, app, body


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise ApiError(400, "the body is not JSON") from None
    if not isinstance(value, dict):
        raise ApiError(400, "the body must be a JSON object")
    return value


Event = tuple[list[str], str, str, str | None, frozenset[str]]


def _event(value: dict[str, Any], where: str) -> Event:
    """(channels, name, data, socket_id, info) of one event; ApiError naming what is wrong."""
    name = value.get("name")
    try:
        p.check_event_name(name)
    except p.FrameError as exc:
        raise ApiError(400, f"{where}name: {exc}") from None
    assert isinstance(name, str)
    if "channels" in value:
        channels = value["channels"]
        if not isinstance(channels, list) or not channels:
            raise ApiError(400, f"{where}channels must be a non-empty list")
    elif "channel" in value:
        channels = [value["channel"]]
    else:
        raise ApiError(400, f"{where}give channels (a list) or channel")
    if len(channels) > MAX_CHANNELS:
        raise ApiError(400, f"{where}at most {MAX_CHANNELS} channels per event")
    try:
        checked = [p.check_trigger_channel(c) for c in channels]
    except p.FrameError as exc:
        raise ApiError(400, f"{where}{exc}") from None
    data = value.get("data", "")
    if not isinstance(data, str):
        data = p.dumps(data)
    if len(data.encode()) > p.MAX_EVENT_DATA:
        raise ApiError(413, f"{where}data must be at most {p.MAX_EVENT_DATA} bytes")
    socket_id = value.get("socket_id")
    if socket_id is not None and not isinstance(socket_id, str):
        raise ApiError(400, f"{where}socket_id must be a string")
    return checked, name, data, socket_id, _event_info(value.get("info"), where)


def _event_info(raw: Any, where: str) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, str):
        raise ApiError(400, f"{where}info must be a comma-separated string of attributes")
    info = frozenset(i.strip() for i in raw.split(",") if i.strip())
    unknown = info - EVENT_INFO
    if unknown:
        raise ApiError(
            400,
            f"{where}unknown info attributes: {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(EVENT_INFO))})",
        )
    return info


async def _attributes(
    service: ChannelService, app: App, channel: str, info: frozenset[str]
) -> dict[str, int]:
    """The attributes ``info`` asks for of one channel (none of a user's own channel)."""
    out: dict[str, int] = {}
    if channel.startswith(p.SERVER_TO_USER):
        return out
    if "subscription_count" in info:
        out["subscription_count"] = await service.store.subscription_count(app.id, channel)
    if "user_count" in info and p.kind(channel) == "presence":
        out["user_count"] = await service.store.member_count(app.id, channel)
    return out


def _handler(inner: Any) -> Any:
    async def handle(request: Request) -> Response:
        try:
            service, app, body = await _authorized(request)
            result: Response = await inner(request, service, app, body)
            return result
        except ApiError as exc:
            return _error(exc.status, str(exc))
        except StoreUnavailable:
            return _error(503, "the hub's store is unavailable; retry")

    return handle


async def events(request: Request, service: ChannelService, app: App, body: bytes) -> Response:
    channels, name, data, socket_id, info = _event(_json_body(body), "")
    await service.trigger(app, channels, name, data, socket_id)
    if not info:
        return JSONResponse({})
    attrs = {c: await _attributes(service, app, c, info) for c in dict.fromkeys(channels)}
    return JSONResponse({"channels": attrs})


async def batch_events(
    request: Request, service: ChannelService, app: App, body: bytes
) -> Response:
    batch = _json_body(body).get("batch")
    if not isinstance(batch, list) or not batch:
        raise ApiError(400, "batch must be a non-empty list of events")
    if len(batch) > MAX_BATCH:
        raise ApiError(400, f"at most {MAX_BATCH} events per batch")
    checked = []
    for n, item in enumerate(batch):
        if not isinstance(item, dict):
            raise ApiError(400, f"batch[{n}] must be an object")
        checked.append(_event(item, f"batch[{n}]: "))
    for channels, name, data, socket_id, _ in checked:
        await service.trigger(app, channels, name, data, socket_id)
    answers = []
    for channels, _, _, _, info in checked:
        # A batch event has one channel (Pusher's format); its attributes are that one's.
        answers.append(await _attributes(service, app, channels[0], info) if info else {})
    return JSONResponse({"batch": answers})


def _info(request: Request) -> set[str]:
    raw = request.query_params.get("info", "")
    return {i for i in raw.split(",") if i}


async def channels(request: Request, service: ChannelService, app: App, body: bytes) -> Response:
    prefix = request.query_params.get("filter_by_prefix", "")
    info = _info(request)
    unknown = info - {"user_count"}
    if unknown:
        raise ApiError(400, f"unknown info attributes: {', '.join(sorted(unknown))}")
    if "user_count" in info and not prefix.startswith(p.PRESENCE):
        raise ApiError(400, "info=user_count needs filter_by_prefix=presence-")
    out: dict[str, dict[str, int]] = {}
    for channel in await service.store.occupied(app.id):
        if not channel.startswith(prefix):
            continue
        attrs: dict[str, int] = {}
        if "user_count" in info:
            attrs["user_count"] = await service.store.member_count(app.id, channel)
        out[channel] = attrs
    return JSONResponse({"channels": out})


def _channel_param(request: Request) -> str:
    try:
        return p.check_channel(request.path_params["channel"])
    except p.FrameError as exc:
        raise ApiError(400, str(exc)) from None


async def channel(request: Request, service: ChannelService, app: App, body: bytes) -> Response:
    name = _channel_param(request)
    info = _info(request)
    unknown = info - {"user_count", "subscription_count"}
    if unknown:
        raise ApiError(400, f"unknown info attributes: {', '.join(sorted(unknown))}")
    if "user_count" in info and p.kind(name) != "presence":
        raise ApiError(400, "user_count is only for presence channels")
    count = await service.store.subscription_count(app.id, name)
    out: dict[str, Any] = {"occupied": count > 0}
    if "user_count" in info:
        out["user_count"] = await service.store.member_count(app.id, name)
    if "subscription_count" in info:
        out["subscription_count"] = count
    return JSONResponse(out)


async def users(request: Request, service: ChannelService, app: App, body: bytes) -> Response:
    name = _channel_param(request)
    if p.kind(name) != "presence":
        raise ApiError(400, "users are only listed for presence channels")
    members = await service.store.members(app.id, name)
    return JSONResponse({"users": [{"id": uid} for uid in members.info]})


async def terminate(request: Request, service: ChannelService, app: App, body: bytes) -> Response:
    user = request.path_params["user"]
    if not user or len(user) > p.MAX_USER_ID:
        raise ApiError(400, f"user id must be 1 to {p.MAX_USER_ID} characters")
    await service.terminate(app, user)
    return JSONResponse({})


routes = [
    Route("/apps/{app_id}/events", _handler(events), methods=["POST"]),
    Route("/apps/{app_id}/batch_events", _handler(batch_events), methods=["POST"]),
    Route("/apps/{app_id}/channels", _handler(channels), methods=["GET"]),
    Route("/apps/{app_id}/channels/{channel}", _handler(channel), methods=["GET"]),
    Route("/apps/{app_id}/channels/{channel}/users", _handler(users), methods=["GET"]),
    Route(
        "/apps/{app_id}/users/{user}/terminate_connections", _handler(terminate), methods=["POST"]
    ),
    Route("/users/{user}/terminate_connections", _handler(terminate), methods=["POST"]),
]
