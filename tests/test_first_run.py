"""What a new user meets in the first five minutes (issue 17): offline refs, defaults, names."""

from __future__ import annotations

import os
import sys

import pexpect

from tests.conftest import run_cli

MISSING = "acme/missing-GGUF"


def test_offline_a_missing_hub_model_fails_at_once_with_69_in_a_pipe() -> None:
    result = run_cli("ask", "-m", MISSING, "hello", env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 69
    message = result.stderr.decode()
    assert "offline" in message and "HF_HUB_OFFLINE" in message
    assert "llmcli pull" not in message  # it cannot work offline
    assert len(message.strip().splitlines()) == 1


def test_offline_a_missing_hub_model_is_not_offered_for_download_in_a_terminal() -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TERM="xterm", NO_COLOR="1")
    child = pexpect.spawn(
        sys.executable, ["-m", "llmcli", "ask", "-m", MISSING, "hello"], env=env, timeout=60
    )
    output = child.read().decode()
    child.close()
    assert child.exitstatus == 69
    assert "Pull it now" not in output and "offline" in output
