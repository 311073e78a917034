"""Transports: they move bytes between sockets and sessions, nothing more."""
