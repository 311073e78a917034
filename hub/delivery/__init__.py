"""Delivery of presence changes to other services: the durable change stream and webhooks.

- :mod:`hub.delivery.stream`: reading the change stream(s) with consumer groups.
- :mod:`hub.delivery.core`: ordered, retried, signed POSTs to one endpoint (any producer).
- :mod:`hub.delivery.webhooks`: the presence webhooks of ``HUB_WEBHOOKS`` on that core.
- :mod:`hub.delivery.queue`: the in-process queue behind webhooks on ``memory://``.
"""
