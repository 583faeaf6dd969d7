"""``ask --show-probs`` (a real pseudo-terminal) and ``ask --json --logprobs K``."""

from __future__ import annotations

import json
import math
import os
import pty
import re
import subprocess
import sys

import pytest

from llmcli.render.tokens import PROB_BANDS, prob_style
from tests.conftest import run_cli

PROMPT = "What is the best way to learn music?"
ARGS = ("ask", "--greedy", "--max-tokens", "12")
SGR = re.compile(r"\x1b\[([0-9;]*)m")
# What Rich writes for each band's colour on a 256-colour terminal.
CODES = {"green": "32", "yellow": "33", "dark_orange": "38;5;208", "red": "31"}


def run_in_terminal(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run the CLI with stdout on a pseudo-terminal and stderr on a pipe."""
    master, slave = pty.openpty()
    full_env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "200", **(env or {})}
    full_env.pop("COLORTERM", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmcli", *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=subprocess.PIPE,
        env=full_env,
    )
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.stderr.close()
    return proc.wait(timeout=120), out.decode().replace("\r\n", "\n"), err.decode()


def coloured_segments(out: str) -> list[tuple[str, str]]:
    """``[(sgr_code, text), ...]`` for each styled run; unstyled text gets code ''."""
    segments: list[tuple[str, str]] = []
    code = ""
    pos = 0
    for match in SGR.finditer(out):
        if match.start() > pos:
            segments.append((code, out[pos : match.start()]))
        code = "" if match.group(1) in ("", "0") else match.group(1)
        pos = match.end()
    if pos < len(out):
        segments.append((code, out[pos:]))
    return segments


@pytest.fixture(scope="module")
def answer() -> dict:
    result = run_cli(*ARGS, "--json", "--logprobs", "3", PROMPT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.mark.slow
def test_terminal_output_colours_each_token_by_its_probability(answer: dict) -> None:
    code, out, err = run_in_terminal(*ARGS, "--show-probs", PROMPT)
    assert code == 0, err
    segments = [(c, t) for c, t in coloured_segments(out) if t.strip("\n")]
    expected = [
        (CODES[prob_style(token["logprob"]) or ""], token["text"]) for token in answer["tokens"]
    ]
    assert segments == expected
    assert SGR.sub("", out).rstrip("\n") == answer["text"]
    # the legend is on stderr and names every band
    for _, _, name, label in PROB_BANDS:
        assert f"{name} {label}" in err
    assert SGR.sub("", out).count("token probability") == 0


def test_pipe_output_is_unchanged_and_has_no_legend() -> None:
    plain = run_cli(*ARGS, PROMPT)
    shown = run_cli(*ARGS, "--show-probs", PROMPT)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == plain.stdout
    assert b"\x1b" not in shown.stdout
    assert shown.stderr == b""


def test_no_color_in_a_terminal_prints_plain_text_and_says_why() -> None:
    code, out, err = run_in_terminal(
        "ask",
        "--greedy",
        "--max-tokens",
        "4",
        "--plain",
        "--show-probs",
        "Hi",
        env={"NO_COLOR": "1"},
    )
    assert code == 0, err
    assert "\x1b[3" not in out
    assert "NO_COLOR" in err


def test_show_probs_with_json_is_a_usage_error() -> None:
    """A flag with no effect is refused (README: one rule), before the model loads."""
    result = run_cli("ask", "--greedy", "--max-tokens", "3", "--json", "--show-probs", "Hi")
    assert result.returncode == 2 and result.stdout == b""
    assert result.stderr.decode() == (
        "llmcli: error: --show-probs has no effect with --json (drop --show-probs)\n"
    )


def test_prob_style_bands() -> None:
    assert prob_style(None) is None
    assert prob_style(0.0) == "green"
    assert prob_style(math.log(0.9)) == "green"
    assert prob_style(math.log(0.6)) == "yellow"
    assert prob_style(math.log(0.3)) == "dark_orange"
    assert prob_style(math.log(0.01)) == "red"


@pytest.mark.slow
def test_logprobs_list_sorted_alternatives_that_include_sampled_tokens() -> None:
    """Sampled (not greedy) tokens: each one's log-probability is among its top K."""
    result = run_cli(
        "ask", "--seed", "3", "--temperature", "1.2", "--top-k", "5", "--max-tokens", "12",
        "--json", "--logprobs", "5", PROMPT,
    )  # fmt: skip
    data = json.loads(result.stdout)
    assert len(data["tokens"]) == data["stats"]["generated_tokens"]
    for token in data["tokens"]:
        top = [t["logprob"] for t in token["top"]]
        assert len(top) == 5 and top == sorted(top, reverse=True)
        assert all(lp <= 0 for lp in top)
        assert sum(math.exp(lp) for lp in top) <= 1 + 1e-6
        # top-k 5 sampling can only pick one of the 5 most likely tokens
        assert token["logprob"] >= top[-1] - 1e-6
    assert "".join(t["text"] for t in data["tokens"]) == data["text"]
