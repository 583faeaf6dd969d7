"""A verdict is about the file, not the moment.

The probe remembers whether a file loads, so a bad file is refused at once next time. A
failure caused by the moment (a memory limit, an allocation that failed, the OOM killer)
must say so, exit 75, and not be remembered; ``llmcli models verify`` judges a file again.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from llmcli.engine import probe
from llmcli.errors import DataError, TemporaryFailure
from tests.conftest import run_cli
from tests.faults.tiny_models import decode_aborting_llama

PYTHON = sys.executable
ALLOC_FAILED = (
    "import os, sys; sys.stderr.write('ggml.c:1644: GGML_ASSERT(ctx->mem_buffer != NULL) "
    "failed\\n'); sys.stderr.flush(); os.abort()"
)


def _under_memory_limit(kib: int, *args: str) -> subprocess.CompletedProcess[bytes]:
    line = f"ulimit -v {kib}; exec {shlex.join([PYTHON, '-m', 'llmcli', *args])}"
    return subprocess.run(
        ["bash", "-c", line], capture_output=True, stdin=subprocess.DEVNULL, timeout=120
    )


def test_a_run_under_a_memory_limit_is_not_remembered_against_a_good_file(
    model_path: Path,
) -> None:
    ask = ("ask", "-m", str(model_path), "--greedy", "-n", "4", "hi")
    limited = _under_memory_limit(300_000, *ask)
    assert limited.returncode == 75, limited.stderr
    message = limited.stderr.decode()
    assert "ran out of memory" in message and "ulimit -v 300000" in message
    assert len(message.strip().splitlines()) == 1
    if probe.verdict_file().exists():
        assert "crashed" not in probe.verdict_file().read_text()
    free = run_cli(*ask)
    assert free.returncode == 0, free.stderr  # the good file is still good


def test_an_allocation_failure_in_the_child_is_a_memory_error_not_a_verdict(
    tmp_path: Path,
) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(TemporaryFailure, match="ran out of memory") as info:
        probe.ensure_loadable(model, command=[PYTHON, "-c", ALLOC_FAILED])
    assert info.value.status == 75
    probe.ensure_loadable(model, command=[PYTHON, "-c", "pass"])  # probed again: nothing kept


def test_a_real_crash_is_still_remembered(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(DataError, match="SIGABRT"):
        probe.ensure_loadable(model, command=[PYTHON, "-c", "import os; os.abort()"])
    with pytest.raises(DataError, match="SIGABRT"):
        probe.ensure_loadable(model, command=[PYTHON, "-c", "pass"])


def test_models_verify_clears_a_verdict_and_judges_the_file_again(model_path: Path) -> None:
    probe.verdict_file().parent.mkdir(parents=True, exist_ok=True)
    wrong = {probe.fingerprint(model_path): "the loader crashed (SIGABRT)"}
    probe.verdict_file().write_text(json.dumps(wrong))  # as an old bad moment left it
    refused = run_cli("ask", "-m", str(model_path), "--greedy", "-n", "2", "hi")
    assert refused.returncode == 65 and b"models verify" in refused.stderr
    verified = run_cli("models", "verify", str(model_path))
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.decode().startswith(f"ok: {model_path}")
    assert b"forgotten" in verified.stdout
    again = run_cli("ask", "-m", str(model_path), "--greedy", "-n", "2", "hi")
    assert again.returncode == 0, again.stderr


def test_models_verify_reports_a_bad_file(tmp_path: Path) -> None:
    bad = decode_aborting_llama(tmp_path / "i32-norm.gguf")
    result = run_cli("models", "verify", str(bad))
    assert result.returncode == 65, result.stderr
    assert b"SIGABRT" in result.stderr and result.stdout == b""
