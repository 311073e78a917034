"""The Redis key names of a Pusher app, built in one place.

Every key of an app carries the hash tag ``{<prefix>pusher:<app id>}`` (:func:`app_tag`),
so the channel store's scripts and the app's webhook stream share one Redis Cluster slot: a
script that makes a transition can append its webhook event atomically. Per app
``T = {hub:pusher:4242}``, beside the channel keys listed in
:mod:`hub.stores.channels.redis`:

============================  ======  =====================================================
``T:hooks``                   stream  the app's webhook events, one per entry, field ``e``
                                      (see :mod:`hub.delivery.pusher`), trimmed by age
``T:hooks:lease:<endpoint>``  string  the node delivering one endpoint (URL) of the app
``T:hooks:dead:<endpoint>``   stream  that endpoint's dead letters (id, reason, body, at)
============================  ======  =====================================================

``<endpoint>`` is the endpoint id (the first 12 hex digits of the SHA-256 of its URL); each
endpoint is the consumer group ``webhook:<endpoint>`` on ``T:hooks``.
"""

from __future__ import annotations


def app_tag(prefix: str, app_id: str) -> str:
    """``{<prefix>pusher:<app id>}``: the hash tag of every key of one app."""
    return f"{{{prefix}pusher:{app_id}}}"


def hooks_stream(prefix: str, app_id: str) -> str:
    """The app's stream of webhook events."""
    return f"{app_tag(prefix, app_id)}:hooks"


def hooks_lease(prefix: str, app_id: str, endpoint: str) -> str:
    """Who delivers one endpoint of the app now."""
    return f"{hooks_stream(prefix, app_id)}:lease:{endpoint}"


def hooks_dead(prefix: str, app_id: str, endpoint: str) -> str:
    """One endpoint's dead letters."""
    return f"{hooks_stream(prefix, app_id)}:dead:{endpoint}"


def hooks_group(endpoint: str) -> str:
    """The consumer group of one endpoint on its app's stream."""
    return f"webhook:{endpoint}"
