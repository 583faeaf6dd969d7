"""A file that passes the header check but crashes llama.cpp must not crash llmcli."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from llmcli.engine import probe
from llmcli.errors import DataError
from tests.conftest import run_cli


def _copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


def test_a_crashing_loader_becomes_an_error_and_the_verdict_is_kept(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 64)
    crash = [sys.executable, "-c", "import os; os.abort()"]
    with pytest.raises(DataError, match="crashed \\(SIGABRT\\)"):
        probe.ensure_loadable(model, command=crash)
    # Remembered: a second call never starts the child (this command would succeed).
    with pytest.raises(DataError, match="SIGABRT"):
        probe.ensure_loadable(model, command=[sys.executable, "-c", "pass"])


def test_a_changed_file_is_probed_again(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(DataError):
        probe.ensure_loadable(model, command=[sys.executable, "-c", "raise SystemExit(3)"])
    model.write_bytes(b"GGUF" + b"\1" * 64)
    probe.ensure_loadable(model, command=[sys.executable, "-c", "pass"])


def test_the_real_model_passes_the_probe_once(model_path: Path) -> None:
    probe.ensure_loadable(model_path)
    assert "ok" in probe.verdict_file().read_text()


def test_a_corrupt_verdict_cache_is_ignored(model_path: Path) -> None:
    probe.verdict_file().parent.mkdir(parents=True, exist_ok=True)
    probe.verdict_file().write_text("{not json")
    probe.ensure_loadable(model_path, command=[sys.executable, "-c", "pass"])


def test_model_llama_cpp_refuses_is_reported_in_one_line(tmp_path: Path, model_path: Path) -> None:
    """A header-valid file whose tensor data is garbage for llama.cpp: exit 65, no traceback."""
    from tests.gguf_factory import write_tiny_llama

    bad = write_tiny_llama(tmp_path / "tiny-without-vocab.gguf")
    result = run_cli("ask", "-m", str(bad), "hi")
    assert result.returncode == 65, result.stderr
    assert b"Traceback" not in result.stderr
    assert len(result.stderr.decode().strip().splitlines()) == 1
