"""The Pusher Channels protocol: pusher-js, Laravel Echo and the Pusher server SDKs, unchanged.

Pure modules hold the wire shapes and rules (:mod:`.protocol`, :mod:`.auth`, :mod:`.apps`,
:mod:`.session`); :mod:`.channels` keeps channel subscriptions across nodes, :mod:`.service`
wires them to the node, and :mod:`.ws` and :mod:`.http` are the transports.
"""
