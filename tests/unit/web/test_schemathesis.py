"""Schemathesis over the generated OpenAPI document, against a real hub served in process:
every REST operation, with the admin key and with a user token, must answer as documented
(status code, content type, schema) and never with a 5xx.

The document is the one ``/openapi.json`` serves (``hub.api.openapi.spec``), loaded with
``schemathesis.openapi.from_dict``; each case is sent over HTTP to the module's hub."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from hub.api.openapi import spec
from tests.support.hubproc import TEST_ADMIN_KEY, user_token
from tests.support.inproc import InProcessHub, inproc_hub_fixture

#: Not REST (the websocket, the metrics text, the pages, this document), and the vendor
#: endpoints that are messaging, documented as 501 (tests/compat checks their shapes).
#: /static is fuzzed (its 404 is JSON, as documented); /ws's plain-HTTP answer is checked
#: in tests/unit/web/test_openapi.py.
SKIPPED = [
    "websocket", "metrics", "openapi", "docs", "index",
    "iflyThreadsGet", "iflyRoomPublish", "iflyUserPublish",
    "agoraOfflineMsgCount", "agoraOfflineMsgStatus",
]  # fmt: skip
USER = "fuzz-user"
#: What the answers must hold to. (The request side of the document is the models' types;
#: the handlers check more, such as a username's characters, and say so in a 400.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    # An operation that declares credentials refuses a request without them (401).
    ignored_auth,
    # A method the path does not serve is a 405 whose Allow header lists those it does.
    unsupported_method,
    allow_header_conformance,
]


fuzzed_hub = inproc_hub_fixture({"HUB_OFFLINE_GRACE_S": "0"})
schema = schemathesis.openapi.from_dict(spec()).exclude(operation_id=SKIPPED)


def credentials(case: Any, admin: bool) -> dict[str, str]:
    """Headers for ``case``'s security scheme; the body's ``api_key`` for iFlyChat."""
    token = TEST_ADMIN_KEY if admin else user_token(USER)
    if isinstance(case.body, dict) and "api_key" in case.body:
        case.body["api_key"] = TEST_ADMIN_KEY if admin else "not-the-key"
    path = case.operation.path
    if path.startswith("/v3/"):
        return {"apikey": TEST_ADMIN_KEY if admin else "not-the-key"}
    if path.startswith("/api/v1/users.") or path == "/api/v1/me":
        return {"X-Auth-Token": token, "X-User-Id": USER}
    return {"Authorization": f"Bearer {token}"}


@schema.parametrize()
@settings(max_examples=6, deadline=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
def test_every_operation_answers_as_documented(case: Any, fuzzed_hub: InProcessHub) -> None:
    """Each generated request, once as admin and once as a user, answers as documented."""
    for admin in (True, False):
        case.call_and_validate(
            base_url=fuzzed_hub.url, headers=credentials(case, admin), checks=CHECKS
        )
