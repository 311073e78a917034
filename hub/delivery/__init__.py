"""Delivery of presence changes to other services: the durable change stream and webhooks.

- :mod:`hub.delivery.stream`: reading Redis streams (the change stream...) with consumer groups.
- :mod:`hub.delivery.core`: ordered, retried, signed POSTs to one endpoint (any producer).
- :mod:`hub.delivery.durable`: an endpoint's deliveries from a stream, one node at a time.
- :mod:`hub.delivery.webhooks`: the presence webhooks of ``HUB_WEBHOOKS`` on that core.
- :mod:`hub.delivery.pusher`: the Pusher apps' webhooks on the same core and durable path.
- :mod:`hub.delivery.queue`: the in-process queue behind webhooks on ``memory://``.
"""
