"""The CLI's use of the settings, as a user runs it (``python -m hub`` processes): the
token command, and ``serve`` with a bad value."""

from __future__ import annotations

import os
import subprocess
import sys

from hub.model.auth import verify_token

SECRET = "config-test-secret-0123456789abcdefghij"


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
        check=False,
    )


def test_token_command_signs_with_hub_secret(tmp_path):
    """``presence-hub token`` prints a token verifiable with HUB_SECRET, carrying the claims."""
    result = _cli(
        "token",
        "u42",
        "--name",
        "Ann",
        "--username",
        "ann",
        "--ttl",
        "60",
        HUB_SECRET=SECRET,
        HUB_ADMIN_KEY="k" * 32,
        XDG_STATE_HOME=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    claims = verify_token(SECRET, result.stdout.strip())
    assert (claims.user, claims.name, claims.username) == ("u42", "Ann", "ann")
    assert claims.exp is not None


def test_serve_with_a_bad_setting_exits_2_naming_it(tmp_path):
    """``serve`` with an unusable setting exits with status 2 and names the variable."""
    result = _cli("serve", "--port", "0", HUB_WINDOW_S="soon", XDG_STATE_HOME=str(tmp_path))
    assert result.returncode == 2
    assert "HUB_WINDOW_S must be a number of seconds, got 'soon'" in result.stderr
