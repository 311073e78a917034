"""Clients for other programs: the websocket SDK, the pub/sub and stream consumers, watch."""
