"""``GET /metrics``: the node's Prometheus metrics (see :mod:`hub.ops.metrics`).

Unauthenticated, as Prometheus scrapes usually are: it shows counts and the version, never
a user id, a token or a key. Keep it on an internal port or behind the proxy's allow list
when the hub faces the internet.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.ops.metrics import CONTENT_TYPE, HubMetrics


def routes(collector: HubMetrics) -> list[Route]:
    async def metrics(request: Request) -> Response:
        """Prometheus text exposition of this node's metrics."""
        return Response(
            await collector.exposition(),
            media_type=CONTENT_TYPE,
            headers={"Cache-Control": "no-store"},
        )

    return [Route("/metrics", metrics, methods=["GET"])]
