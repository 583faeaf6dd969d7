"""``llmcli chat`` with stdin not a terminal, and ``ask -c``: the real CLI and model.

One message per line, plain answers on stdout; every turn is saved, which lets the
tests read each answer's stats (``history show --json``) to check that a turn
reuses the KV cache of the previous prompt and answer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import run_cli

FAST = ("--greedy", "--max-tokens", "16", "--quiet")


def chat(*args: str, input: str) -> Any:
    return run_cli("chat", *args, input=input, timeout=300)


def conversation(conv_id: int | None = None) -> dict[str, Any]:
    if conv_id is None:
        rows = json.loads(run_cli("history", "list", "--json").stdout)
        conv_id = rows[0]["id"]
    result = run_cli("history", "show", str(conv_id), "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_two_turns_print_plain_answers_and_are_saved() -> None:
    result = chat(*FAST, input="My name is Bob.\nWhat is my name?\n")
    assert result.returncode == 0, result.stderr
    assert b"\x1b" not in result.stdout
    assert result.stderr == b""  # --quiet: no stats lines
    data = conversation()
    roles = [m["role"] for m in data["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    answers = [m["content"] for m in data["messages"][1::2]]
    assert all(answer.strip() for answer in answers)
    assert result.stdout.decode() == "".join(a + "\n" for a in answers)


def test_second_turn_reuses_the_cached_prompt_and_answer() -> None:
    result = chat(*FAST, input="Tell me about cats.\nAnd dogs?\n")
    assert result.returncode == 0, result.stderr
    first, second = (m["stats"] for m in conversation()["messages"][1::2])
    # everything evaluated before stays in the KV cache (the last sampled token
    # is evaluated only if generation went on past it)
    evaluated_before = first["prompt_tokens"] + first["generated_tokens"] - 1
    assert second["cached_tokens"] >= evaluated_before
    assert second["prompt_tokens"] > first["prompt_tokens"] + first["generated_tokens"]


def test_stats_line_after_each_answer_unless_quiet() -> None:
    result = chat("--greedy", "--max-tokens", "4", input="Hi\nBye\n")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.decode().splitlines() if "tokens" in line]
    assert len(lines) == 2 and "TTFT" in lines[0]


def test_slash_commands_work_in_a_pipe() -> None:
    script = "/system Answer like a pirate.\n/set max_tokens 3\nHello\n/tokens\n"
    result = chat("--greedy", "--quiet", input=script)
    assert result.returncode == 0, result.stderr
    data = conversation()
    assert data["system"] == "Answer like a pirate."
    assert data["messages"][1]["stats"]["generated_tokens"] <= 3
    assert "context used:" in result.stdout.decode()


def test_triple_quoted_block_is_one_message() -> None:
    result = chat(*FAST, input='"""\nfirst line\nsecond line\n"""\n')
    assert result.returncode == 0, result.stderr
    assert conversation()["messages"][0]["content"] == "first line\nsecond line"


def test_continue_resumes_the_last_conversation() -> None:
    assert chat(*FAST, input="Remember the word banana.\n").returncode == 0
    first = conversation()
    result = chat(*FAST, "--continue", input="Which word?\n")
    assert result.returncode == 0, result.stderr
    again = conversation()
    assert again["id"] == first["id"]
    assert [m["content"] for m in again["messages"][:2]] == [
        m["content"] for m in first["messages"]
    ]
    assert len(again["messages"]) == 4
    # the resumed turn's prompt holds the earlier exchange
    assert (
        again["messages"][3]["stats"]["prompt_tokens"]
        > first["messages"][1]["stats"]["prompt_tokens"] + len("Which word?") // 4
    )


def test_resume_by_id_and_errors() -> None:
    assert chat(*FAST, input="one\n").returncode == 0
    assert chat(*FAST, input="two\n").returncode == 0
    rows = json.loads(run_cli("history", "list", "--json").stdout)
    older = rows[-1]["id"]
    assert chat(*FAST, "--resume", str(older), input="three\n").returncode == 0
    assert [m["content"] for m in conversation(older)["messages"][::2]] == ["one", "three"]
    missing = chat(*FAST, "--resume", "999", input="x\n")
    assert missing.returncode == 1 and b"no conversation 999" in missing.stderr
    both = chat("--continue", "--resume", "1", input="x\n")
    assert both.returncode == 2


def test_continue_with_no_history_is_an_error() -> None:
    result = chat("--continue", input="x\n")
    assert result.returncode == 1
    assert b"no conversation to continue" in result.stderr


def test_ask_continue_adds_a_turn_to_the_last_conversation() -> None:
    assert chat(*FAST, input="My favourite colour is green.\n").returncode == 0
    before = conversation()
    result = run_cli("ask", "-c", "--greedy", "--max-tokens", "12", "What is my favourite colour?")
    assert result.returncode == 0, result.stderr
    after = conversation()
    assert after["id"] == before["id"]
    assert [m["role"] for m in after["messages"]] == ["user", "assistant"] * 2
    assert after["messages"][2]["content"] == "What is my favourite colour?"
    assert after["messages"][3]["content"] == result.stdout.decode().rstrip("\n")


def test_ask_continue_starts_a_conversation_when_there_is_none() -> None:
    result = run_cli("ask", "-c", "--greedy", "--max-tokens", "4", "Hello")
    assert result.returncode == 0, result.stderr
    assert [m["content"] for m in conversation()["messages"]][0] == "Hello"
    assert run_cli("ask", "-c", "--raw", "x").returncode == 2


def test_plain_ask_is_not_saved() -> None:
    assert run_cli("ask", "--max-tokens", "2", "hi").returncode == 0
    assert json.loads(run_cli("history", "list", "--json").stdout) == []


@pytest.mark.slow
def test_small_context_drops_the_oldest_exchanges() -> None:
    messages = [f"Tell me a long story about the number {i}, please." for i in range(6)]
    result = chat(
        "--ctx", "256", "--greedy", "--max-tokens", "32", input="\n".join(messages) + "\n"
    )
    assert result.returncode == 0, result.stderr
    assert b"oldest exchange" in result.stderr
    data = conversation()
    assert len(data["messages"]) == 12  # trimmed from the prompt, not from the history
    assert all(m["stats"]["prompt_tokens"] + 32 <= 256 for m in data["messages"][1::2])


def test_overflow_error_policy_stops_the_turn() -> None:
    long_message = "Tell me everything about the sea. " * 20
    result = chat(
        "--ctx",
        "256",
        "--greedy",
        "--max-tokens",
        "60",
        "--quiet",
        "--on-overflow",
        "error",
        input=f"{long_message}\n{long_message}\n",
    )
    assert result.returncode == 65
    assert b"does not fit the context of 256" in result.stderr
    assert len(conversation()["messages"]) == 2  # the refused message is not kept


def test_empty_input_is_fine() -> None:
    result = chat(*FAST, input="")
    assert result.returncode == 0
    assert result.stdout == b""


def test_sigterm_during_an_answer_saves_the_partial_answer_and_exits_143() -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "llmcli", "chat", "--greedy", "--max-tokens", "400", "--quiet"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(b"Write a very long essay about the history of the Roman Empire.\n")
    child.stdin.flush()  # stdin stays open: the chat would wait for more
    first = child.stdout.read(1)  # the answer has started
    child.send_signal(signal.SIGTERM)
    rest, _ = child.communicate(timeout=120)
    assert child.returncode == 143
    messages = conversation()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["interrupted"] is True
    assert messages[1]["content"].startswith((first + rest).decode().strip()[:1])
    assert messages[1]["stats"]["generated_tokens"] < 400
