"""One rule for flags that would have no effect (issue 17): a usage error, exit 2, one line
naming the flag to drop, before any model is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmcli.cli.app import run
from llmcli.context import Environment
from llmcli.engine.fake import FakeEngine
from llmcli.errors import ExitStatus
from llmcli.store.resolve import ResolvedModel
from tests.conftest import in_process_env, run_cli


def _env(loads: list[Any]) -> Environment:
    def load(flags: Any, settings: Any) -> tuple[FakeEngine, ResolvedModel]:
        loads.append(flags)
        engine = FakeEngine()
        engine.enqueue("answer")
        return engine, ResolvedModel(path=Path(), name=engine.model_name, source="fake")

    return in_process_env(load)


CASES = [
    (["ask", "--logprobs", "2", "x"], "--logprobs has no effect without --json (add --json, "
     "or drop --logprobs)"),
    (["ask", "--json", "--show-probs", "x"], "--show-probs has no effect with --json "
     "(drop --show-probs)"),
    (["ask", "--greedy", "-t", "0.5", "x"], "--temperature has no effect with --greedy "
     "(drop --temperature)"),
    (["ask", "--greedy", "--top-k", "5", "x"], "--top-k has no effect with --greedy "
     "(drop --top-k)"),
    (["chat", "--greedy", "--top-p", "0.5"], "--top-p has no effect with --greedy "
     "(drop --top-p)"),
    (["ask", "--greedy", "--min-p", "0.1", "x"], "--min-p has no effect with --greedy "
     "(drop --min-p)"),
    (["ask", "--raw", "-s", "be brief", "x"], "--system has no effect with --raw "
     "(drop --system)"),
    (["next", "--raw", "-s", "be brief", "x"], "--system has no effect with --raw "
     "(drop --system)"),
    (["lens", "--raw", "-s", "be brief", "x"], "--system has no effect with --raw "
     "(drop --system)"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "message"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_a_flag_with_no_effect_is_one_usage_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    loads: list[Any] = []
    assert run(argv, env=_env(loads)) == ExitStatus.USAGE
    assert capsys.readouterr().err == f"llmcli: error: {message}\n"
    assert loads == []  # refused before a model is loaded


def test_flags_that_do_something_are_still_accepted() -> None:
    for argv in (
        ["ask", "--json", "--logprobs", "2", "x"],
        ["ask", "--greedy", "--repeat-penalty", "1.2", "x"],  # penalties change the logits
        ["ask", "--greedy", "--seed", "3", "x"],
        ["ask", "-t", "0.5", "x"],
    ):
        loads: list[Any] = []
        assert run(argv, env=_env(loads)) == 0, argv
        assert len(loads) == 1


def test_greedy_with_a_temperature_is_refused_by_the_real_cli() -> None:
    result = run_cli("ask", "--greedy", "-t", "0.5", "-n", "3", "Hi")
    assert result.returncode == 2 and result.stdout == b""
    expected = "llmcli: error: --temperature has no effect with --greedy (drop --temperature)\n"
    assert result.stderr.decode() == expected
