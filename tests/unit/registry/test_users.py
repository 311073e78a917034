"""The registry contract for users (tests/backends/registry_users.py) on the memory store,
and the index keys and password hashes on their own."""

from hub.stores.registry.base import created_key
from hub.stores.registry.passwords import hash_password, verify_password
from tests.backends.registry_users import *  # noqa: F403


def test_index_keys_sort_by_creation_then_id() -> None:
    """Creation keys order numerically by time (zero-padded), then by id."""
    keys = [created_key(99, "b"), created_key(1000, "a"), created_key(99, "a")]
    assert sorted(keys) == [created_key(99, "a"), created_key(99, "b"), created_key(1000, "a")]


def test_password_hashes_are_salted_scrypt() -> None:
    """Two hashes of one password differ, both verify it, neither verifies another."""
    one, two = hash_password("s3cret"), hash_password("s3cret")
    assert one != two and one.startswith("scrypt$")
    assert verify_password("s3cret", one) and verify_password("s3cret", two)
    assert not verify_password("other", one) and not verify_password("s3cret", "garbage")
