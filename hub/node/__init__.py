"""A hub node: its connections, fan-out, rooms, admin actions, queries and its loops."""
