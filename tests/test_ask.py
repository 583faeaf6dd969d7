"""``llmcli ask`` end to end: the real CLI in a subprocess, the real SmolLM2 model."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli

ESC = b"\x1b"


def ask(*args: str, input: str | bytes | None = None, env: dict[str, str] | None = None):
    return run_cli("ask", *args, input=input, env=env)


def test_streams_an_answer_from_the_bundled_model_offline() -> None:
    result = ask("--max-tokens", "16", "Say hello.")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert ESC not in result.stdout and ESC not in result.stderr


def test_greedy_is_deterministic() -> None:
    first = ask("--greedy", "--max-tokens", "24", "Name three colours.")
    second = ask("--greedy", "--max-tokens", "24", "Name three colours.")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert first.stdout.strip()


def test_same_seed_gives_same_text_and_other_seeds_differ() -> None:
    runs = [
        ask("--seed", str(seed), "--temperature", "1.5", "--max-tokens", "24", "Tell a story.")
        for seed in (7, 7, 8)
    ]
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    assert runs[0].stdout == runs[1].stdout
    assert runs[0].stdout != runs[2].stdout


def test_stdin_reaches_the_model() -> None:
    result = ask("--raw", "--greedy", "--max-tokens", "6", input="1, 2, 3, 4,")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith(" 5, 6")


def test_stdin_comes_first_then_the_prompt_words() -> None:
    result = ask("--raw", "--greedy", "--max-tokens", "3", "--json", "5,", input="1, 2, 3, 4,")
    data = json.loads(result.stdout)
    assert data["text"].startswith(" 6")


def test_max_tokens_is_an_upper_bound_checked_with_the_tokenizer(model_path: Path) -> None:
    import llama_cpp

    result = ask("--max-tokens", "7", "--json", "Write a poem about the sea.")
    data = json.loads(result.stdout)
    assert data["stats"]["generated_tokens"] <= 7
    assert data["finish_reason"] in ("length", "stop")
    llm = llama_cpp.Llama(model_path=str(model_path), vocab_only=True, verbose=False)
    assert len(llm.tokenize(data["text"].encode(), add_bos=False)) <= 7


def test_stop_sequence_ends_the_answer_and_is_not_printed() -> None:
    result = ask("--raw", "--greedy", "--max-tokens", "20", "--stop", " 8", input="1, 2, 3, 4,")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == "5, 6, 7,"


def test_multibyte_characters_stream_intact() -> None:
    prompt = "日本語 🙂 日本語 🙂 日本語 🙂 日本語 🙂 日本語 🙂"
    result = ask("--raw", "--greedy", "--max-tokens", "30", input=prompt)
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode("utf-8")  # strict: fails on a split character
    assert "\ufffd" not in text
    assert "🙂" in text or "日本語" in text


def test_long_whitespace_tokens_survive() -> None:
    """SmolLM2 has 47 tokens over 32 bytes (whitespace runs); none may vanish."""
    indent = "\n" + " " * 40  # one 41-byte token in SmolLM2's vocabulary
    code = "values = [" + "".join(f"{indent}{i}," for i in range(1, 9))
    result = ask("--raw", "--greedy", "--max-tokens", "8", input=code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith(f"{indent}9,{indent}10,")


def test_prompt_longer_than_the_context_is_refused_with_both_counts() -> None:
    result = ask("--ctx", "256", input="word " * 600)
    assert result.returncode == 65
    message = result.stderr.decode()
    assert "631 tokens" in message and "holds 256" in message
    assert "Traceback" not in message
    assert len(message.strip().splitlines()) == 1


def test_unreadable_model_file_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"this is not a model" * 10)
    result = ask("-m", str(bogus), "hello")
    assert result.returncode == 65
    message = result.stderr.decode()
    assert str(bogus) in message
    assert "Traceback" not in message
    assert len(message.strip().splitlines()) == 1


def test_missing_model_file_names_the_fix() -> None:
    result = ask("-m", "/nonexistent/model.gguf", "hello")
    assert result.returncode == 1
    assert b"llmcli pull" in result.stderr


def test_empty_prompt_is_a_usage_error() -> None:
    result = ask(input="   \n")
    assert result.returncode == 2
    assert b"prompt is empty" in result.stderr


def test_json_output_is_one_object() -> None:
    result = ask("--greedy", "--max-tokens", "5", "--json", "Hi")
    data = json.loads(result.stdout)
    assert set(data) >= {"model", "text", "finish_reason", "stats"}
    assert data["model"] == "SmolLM2-135M-Instruct.Q4_1"
    assert data["stats"]["generated_tokens"] >= 1


def test_logprobs_in_json() -> None:
    result = ask("--greedy", "--max-tokens", "3", "--json", "--logprobs", "3", "Hi")
    data = json.loads(result.stdout)
    tokens = data["tokens"]
    assert 1 <= len(tokens) <= 3
    for token in tokens:
        assert token["logprob"] <= 0
        assert len(token["top"]) == 3
        # greedy: the chosen token is the most likely one
        assert token["logprob"] == pytest.approx(token["top"][0]["logprob"], abs=1e-6)


def test_stats_line_goes_to_stderr() -> None:
    result = ask("--greedy", "--max-tokens", "5", "--stats", "Hi")
    assert result.returncode == 0
    assert b"tok/s" in result.stderr
    assert b"tok/s" not in result.stdout


def test_broken_pipe_ends_quietly() -> None:
    command = (
        f"{sys.executable} -m llmcli ask --greedy --max-tokens 200 'Write a long story.' "
        "| head -c 20"
    )
    result = subprocess.run(["bash", "-c", command], capture_output=True, timeout=120)
    assert len(result.stdout) <= 20
    assert b"Traceback" not in result.stderr
    assert b"Exception ignored" not in result.stderr
    assert result.stderr == b""


def _interrupt_after_output(sig: int) -> tuple[int, bytes, float]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmcli",
            "ask",
            "--max-tokens",
            "2000",
            "--temperature",
            "1.0",
            "Write a very long story about a dragon.",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    first = proc.stdout.read(1)  # generation has started
    sent = time.monotonic()
    proc.send_signal(sig)
    rest, err = proc.communicate(timeout=30)
    elapsed = time.monotonic() - sent
    assert b"Traceback" not in err, err
    return proc.returncode, first + rest, elapsed


def test_ctrl_c_exits_130_and_keeps_partial_output() -> None:
    code, out, _ = _interrupt_after_output(signal.SIGINT)
    assert code == 130
    assert out.strip()


def test_sigterm_exits_143() -> None:
    code, out, _ = _interrupt_after_output(signal.SIGTERM)
    assert code == 143
    assert out.strip()


def test_help_does_not_import_llama_cpp() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "llmcli", "--help"],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert b"llama_cpp" not in result.stderr
    version = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "llmcli", "--version"],
        capture_output=True,
        timeout=60,
    )
    assert version.stdout.startswith(b"llmcli ")
    assert b"llama_cpp" not in version.stderr
