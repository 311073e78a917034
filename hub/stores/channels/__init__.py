"""Pusher channel state across every hub node, and the bus that carries channel events."""
