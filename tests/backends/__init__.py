"""Suites that run on every store backend. Each is collected by a module in the tiers that
run it (tests/unit: memory; tests/integration: Redis, Redis Cluster), which get their
``backend_name`` from tests/conftest.py."""
