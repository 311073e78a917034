"""The room fixtures' websocket clients (tests/backends/rooms.py)."""

from tests.backends.rooms import clients, connect  # noqa: F401
