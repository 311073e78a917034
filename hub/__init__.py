"""Presence Hub: who is online right now, and what changed since I last looked."""

__version__ = "0.1.0"
