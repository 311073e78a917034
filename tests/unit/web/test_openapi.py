"""The OpenAPI document covers every route of the app (and only those), is valid OpenAPI
3.1, and is served with its page by a hub (in process)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
from openapi_spec_validator import validate
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from hub.api.openapi import spec
from hub.ops.app import create_app
from hub.ops.config import Settings
from tests.support.hubproc import TEST_ADMIN_KEY, TEST_SECRET
from tests.support.inproc import InProcessHub, inproc_hub_fixture

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


hub = inproc_hub_fixture()


def app_routes() -> list[BaseRoute]:
    app = create_app(Settings(secret=TEST_SECRET, admin_key=TEST_ADMIN_KEY))
    return list(app.routes)


def openapi_path(path: str) -> str:
    """Starlette's ``{name:converter}`` as OpenAPI's ``{name}``."""
    return re.sub(r"\{([^}:]+):[^}]+\}", r"{\1}", path)


def walk(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    for route in routes:
        if isinstance(route, Mount) and route.routes:
            yield from walk(list(route.routes), prefix + route.path)
        else:
            yield prefix + getattr(route, "path", ""), route


def test_every_route_is_in_the_spec() -> None:
    """Each Route's methods, the websocket and each mounted folder have an entry in the spec."""
    paths: dict[str, dict[str, Any]] = spec()["paths"]
    missing = []
    for path, route in walk(app_routes()):
        documented = paths.get(openapi_path(path), {})
        if isinstance(route, Route):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                if method.lower() not in documented:
                    missing.append(f"{method} {path}")
        elif isinstance(route, WebSocketRoute):
            if "x-websocket" not in documented.get("get", {}):
                missing.append(f"WEBSOCKET {path}")
        elif isinstance(route, Mount):
            if not any(p.startswith(path.rstrip("/") + "/{") for p in paths):
                missing.append(f"MOUNT {path}")
        else:
            missing.append(f"{type(route).__name__} {path} (unknown route type)")
    assert not missing, f"routes missing from /openapi.json: {missing}"


def test_the_spec_documents_no_route_that_does_not_exist() -> None:
    """Every documented path and method is served (no stale entries)."""
    served: dict[str, set[str]] = {}
    for path, route in walk(app_routes()):
        methods = served.setdefault(openapi_path(path), set())
        if isinstance(route, Route):
            methods.update(m.lower() for m in route.methods or ())
        elif isinstance(route, WebSocketRoute):
            methods.add("get")
        elif isinstance(route, Mount):
            served.setdefault(path.rstrip("/") + "/{path}", set()).add("get")
    stale = [
        f"{method.upper()} {path}"
        for path, item in spec()["paths"].items()
        for method in item
        if method in HTTP_METHODS and method not in served.get(path, set())
    ]
    assert not stale, f"documented but not served: {stale}"


def test_spec_is_valid_openapi_3_1() -> None:
    """The document passes the OpenAPI 3.1 validator; operation ids are unique."""
    document = spec()
    assert document["openapi"] == "3.1.0"
    validate(document)
    ids = [
        op["operationId"]
        for item in document["paths"].values()
        for method, op in item.items()
        if method in HTTP_METHODS and "operationId" in op
    ]
    assert len(ids) == len(set(ids))


def test_served_document_and_page(hub: InProcessHub) -> None:
    """/openapi.json serves the document; /docs is one self-contained HTML page."""
    document = httpx.get(f"{hub.url}/openapi.json").json()
    assert document == spec()
    page = httpx.get(f"{hub.url}/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'fetch("/openapi.json")' in page.text
    assert "://" not in page.text and "<script src" not in page.text and "@import" not in page.text


def test_plain_http_on_ws_and_a_missing_static_file_answer_as_documented(
    hub: InProcessHub,
) -> None:
    """GET /ws without an upgrade, and a file /static does not have: the status and the
    JSON body the document gives for them (not the text/plain it used to say)."""
    document = spec()
    for path, operation in (("/ws", "/ws"), ("/static/no-such-file.js", "/static/{path}")):
        response = httpx.get(f"{hub.url}{path}", timeout=10)
        documented = document["paths"][operation]["get"]["responses"]
        assert str(response.status_code) in documented, (path, response.status_code)
        media = documented[str(response.status_code)]["content"]
        assert response.headers["content-type"].split(";")[0] in media, (path, media)
        assert response.json()["success"] is False
