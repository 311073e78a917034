"""The OpenAPI paths of the compatibility routes: complete, and a valid OpenAPI 3.1 document."""

from __future__ import annotations

from openapi_spec_validator import validate
from starlette.routing import Route

from hub.web import openapi
from hub.web.compat import agora, cometchat, iflychat, openapi_paths, rocketchat


def test_every_compat_route_and_method_is_described() -> None:
    """Each route of the Agora, CometChat and iFlyChat modules, and users.listByStatus,
    has a path item with an operation for each of its methods."""
    routes = [*agora.routes, *cometchat.routes, *iflychat.routes]
    routes += [r for r in rocketchat.routes if r.path == "/api/v1/users.listByStatus"]
    for route in routes:
        assert isinstance(route, Route)
        item = openapi_paths.PATHS.get(route.path)
        assert item is not None, f"{route.path} is missing from PATHS"
        methods = {m.lower() for m in route.methods or ()} - {"head"}
        assert methods <= set(item), f"{route.path}: {methods - set(item)} undescribed"


def test_the_merged_document_is_valid_openapi() -> None:
    """/openapi.json with these paths merged in passes the OpenAPI 3.1 validator."""
    spec = openapi.spec()
    validate(spec)
    assert "/{org}/{app}/users/batch/status" in spec["paths"]
    assert "cometchatApiKey" in spec["components"]["securitySchemes"]
    operation_ids = [
        op["operationId"] for item in openapi_paths.PATHS.values() for op in item.values()
    ]
    assert len(operation_ids) == len(set(operation_ids)), "operationIds are unique"
