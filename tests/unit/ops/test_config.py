"""Settings from the environment: the documented defaults, values, and bad values named."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from hub.ops.config import ConfigError, Settings
from hub.stores.presence import open_store


def test_defaults_are_the_documented_ones():
    """With an empty environment every setting has DESIGN.md's default."""
    s = Settings.from_env({})
    assert (s.store, s.window_s, s.offline_grace_s, s.node_ttl_s) == ("memory://", 600.0, 5.0, 10.0)
    assert (s.tick_ms, s.channel, s.hello_timeout_s) == (50, "hub:presence", 5.0)
    assert (s.window_ms, s.grace_ms, s.node_ttl_ms) == (600_000, 5_000, 10_000)
    assert s.log_format == "json" and s.auto_register is True
    assert s.node_id and Settings.from_env({}).node_id != s.node_id, "node ids are random"


def test_environment_values_are_read_with_fractional_seconds():
    """HUB_* values are parsed, seconds may be fractional, ms properties follow."""
    s = Settings.from_env({
        "HUB_STORE": "redis://127.0.0.1:1/0", "HUB_SECRET": "s", "HUB_ADMIN_KEY": "k",
        "HUB_WINDOW_S": "2.5", "HUB_OFFLINE_GRACE_S": "0.25", "HUB_NODE_TTL_S": "1",
        "HUB_TICK_MS": "20", "HUB_HELLO_TIMEOUT_S": "0.5", "HUB_MAX_FRAME_BYTES": "1024",
        "HUB_RATE_PER_S": "7.5", "HUB_LOG_FORMAT": "text", "HUB_AUTO_REGISTER": "off",
        "HUB_NODE_ID": "n1", "HUB_CHANNEL": "c", "HUB_KEY_PREFIX": "p:",
    })  # fmt: skip
    assert (s.window_ms, s.grace_ms, s.node_ttl_ms) == (2_500, 250, 1_000)
    assert (s.tick_ms, s.hello_timeout_s, s.max_frame_bytes, s.rate_per_s) == (20, 0.5, 1024, 7.5)
    assert (s.store, s.secret, s.admin_key, s.node_id) == ("redis://127.0.0.1:1/0", "s", "k", "n1")
    assert (s.log_format, s.auto_register, s.channel, s.key_prefix) == ("text", False, "c", "p:")


def test_port_prefers_port_over_hub_port():
    """PORT (the platform's) wins over HUB_PORT."""
    assert Settings.from_env({"HUB_PORT": "9000"}).port == 9000
    assert Settings.from_env({"HUB_PORT": "9000", "PORT": "9100"}).port == 9100


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("HUB_WINDOW_S", "ten", "must be a number of seconds"),
        ("HUB_WINDOW_S", "0.5", "must be at least 1.0"),
        ("HUB_OFFLINE_GRACE_S", "-1", "must be at least 0.0"),
        ("HUB_NODE_TTL_S", "0.1", "must be at least 0.2"),
        ("HUB_TICK_MS", "1.5", "must be a whole number"),
        ("HUB_TICK_MS", "0", "must be at least 1"),
        ("HUB_MAX_FRAME_BYTES", "100", "must be at least 256"),
        ("HUB_RATE_PER_S", "0", "must be at least 1.0"),
        ("HUB_AUTO_REGISTER", "maybe", "must be true or false"),
        ("HUB_LOG_FORMAT", "xml", "must be json or text"),
    ],
)
def test_bad_values_name_the_variable(name, value, needle):
    """A value the hub cannot use raises ConfigError naming the variable and the value."""
    with pytest.raises(ConfigError, match=needle) as info:
        Settings.from_env({name: value})
    assert name in str(info.value) and repr(value) in str(info.value)


@pytest.mark.parametrize(("ttl", "sweep"), [(10.0, 1.0), (1.0, 1 / 3), (0.2, 0.2 / 3)])
def test_sweep_interval_is_a_third_of_the_ttl_at_most_one_second(ttl, sweep):
    """Nodes heartbeat and sweep every TTL/3 (at most 1 s), so a dead node is reaped in time."""
    assert Settings(node_ttl_s=ttl).sweep_s == pytest.approx(sweep)


def test_settings_are_frozen_and_generated_keys_fill_only_gaps():
    """Settings cannot be mutated; with_generated_keys keeps given keys and marks generation."""
    s = Settings(secret="given")
    with pytest.raises(FrozenInstanceError):
        s.secret = "x"  # type: ignore[misc]
    g = s.with_generated_keys()
    assert g.secret == "given" and len(g.admin_key) >= 24 and g.generated_keys
    both = Settings(secret="a", admin_key="b")
    assert both.with_generated_keys() is both


def test_unknown_store_scheme_is_a_config_error():
    """open_store() refuses a URL it has no backend for, naming HUB_STORE."""
    with pytest.raises(ConfigError, match="HUB_STORE must start with memory://"):
        open_store(Settings(store="mongodb://x"))


@pytest.mark.parametrize(("raw", "value"), [(None, "everyone"), ("nobody", "nobody"),
                                            (" Everyone ", "everyone")])  # fmt: skip
def test_last_seen_is_everyone_or_nobody(raw, value):
    """``HUB_LAST_SEEN`` defaults to everyone; anything but everyone or nobody is refused."""
    env = {} if raw is None else {"HUB_LAST_SEEN": raw}
    assert Settings.from_env(env).last_seen == value
    with pytest.raises(ConfigError, match="HUB_LAST_SEEN must be everyone or nobody"):
        Settings.from_env({"HUB_LAST_SEEN": "friends"})
