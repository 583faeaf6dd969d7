"""A model that loads but aborts llama.cpp at the first decode is an error, not a crash.

The file (:func:`tests.faults.tiny_models.decode_aborting_llama`) passes the header check
and ``llama_model_load``; only evaluating a token trips ``GGML_ASSERT`` and ``abort()``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from llmcli.engine import probe
from tests.conftest import run_cli
from tests.faults.tiny_models import decode_aborting_llama


def test_ask_on_a_model_that_aborts_while_decoding_is_a_one_line_error(tmp_path: Path) -> None:
    bad = decode_aborting_llama(tmp_path / "i32-norm.gguf")
    for _ in range(2):  # the second time from the remembered verdict
        result = run_cli("ask", "-m", str(bad), "hi", timeout=60)
        assert result.returncode == 65, (result.returncode, result.stderr[-2000:])
        assert result.stdout == b""  # no gdb backtrace, no partial answer
        message = result.stderr.decode().strip()
        assert len(message.splitlines()) == 1, message[-2000:]
        assert str(bad) in message and "SIGABRT" in message
    assert "SIGABRT" in probe.verdict_file().read_text()


def test_the_main_process_never_prints_a_ggml_backtrace(tmp_path: Path) -> None:
    """Even when the probe is bypassed (a verdict of "ok" forged in the cache), an abort in
    this process writes no gdb backtrace to stdout and leaves no child holding the pipes
    (``subprocess.run`` returning at all shows the pipes were closed)."""
    bad = decode_aborting_llama(tmp_path / "i32-norm.gguf")
    probe.verdict_file().parent.mkdir(parents=True, exist_ok=True)
    probe.verdict_file().write_text(json.dumps({probe.fingerprint(bad): "ok"}))
    env = {k: v for k, v in os.environ.items() if k != "GGML_NO_BACKTRACE"}
    result = run_cli("ask", "-m", str(bad), "hi", timeout=60, env=env)
    assert result.returncode in (-6, 134), result.returncode  # SIGABRT, nothing to catch
    assert b"gdb" not in result.stdout and b"LWP" not in result.stdout
    assert b"#0 " not in result.stdout and result.stdout == b""


def test_a_chat_survives_switching_to_a_model_that_aborts_while_decoding(
    tmp_path: Path,
) -> None:
    bad = decode_aborting_llama(tmp_path / "i32-norm.gguf")
    lines = ["Say hi.", f"/model {bad}", "Say bye."]
    result = run_cli("chat", "-q", "--greedy", "-n", "8", input="\n".join(lines) + "\n")
    assert result.returncode == 65, result.stderr[-2000:]
    errors = [line for line in result.stderr.decode().splitlines() if "error" in line]
    assert len(errors) == 1 and str(bad) in errors[0] and "SIGABRT" in errors[0]
    assert b"gdb" not in result.stdout
    assert len(result.stdout.decode().strip().splitlines()) >= 2  # both answers
    shown = json.loads(run_cli("history", "show", "1", "--json").stdout)
    assert shown["model"].startswith("SmolLM2")
    assert [m["role"] for m in shown["messages"]] == ["user", "assistant"] * 2


def test_the_probe_child_evaluates_tokens(tmp_path: Path) -> None:
    bad = decode_aborting_llama(tmp_path / "i32-norm.gguf")
    verdict = probe._probe(bad, [sys.executable, "-m", "llmcli.engine.probe", str(bad)])
    assert "SIGABRT" in verdict.text and verdict.lasting
