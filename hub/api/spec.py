"""How an endpoint describes itself for ``/openapi.json``: one :class:`Operation` per route
and method, next to the route, naming the models it reads and answers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    #: Status code -> the answer's model (None: no JSON body).
    responses: Mapping[int, Any]
    query: Any = None
    body: Any = None
    #: Alternatives, each a tuple of security scheme names that go together.
    security: tuple[tuple[str, ...], ...] = ()
    description: str = ""
    #: The body may also come as a urlencoded form.
    form: bool = False
    #: Extra OpenAPI fields of the operation (``x-websocket``, a non-JSON answer).
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: Answers that are not JSON: status -> (media type, description).
    raw: Mapping[int, tuple[str, str]] = field(default_factory=dict)
