"""Familiar names (issue 17): ``llmcli run``, ``list``/``show``/``rm``, ``completion SHELL``,
``-v`` for ``--verbose`` and ``-V`` for ``--version``."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import pexpect

from llmcli import __version__
from llmcli.cli.app import run
from llmcli.context import Environment
from llmcli.engine.fake import FakeEngine
from llmcli.store.resolve import ResolvedModel
from tests.conftest import in_process_env, run_cli

ROOT = Path(__file__).resolve().parent.parent


def _env(engine: FakeEngine, seen: list[Any] | None = None) -> Environment:
    def load(flags: Any, settings: Any) -> tuple[FakeEngine, ResolvedModel]:
        if seen is not None:
            seen.append(flags)
        return engine, ResolvedModel(path=Path(), name=engine.model_name, source="fake")

    return in_process_env(load)


def _out(env: Environment) -> str:
    return env.stdout.getvalue()  # type: ignore[attr-defined]


def test_run_with_a_prompt_is_ask_with_its_options() -> None:
    engine = FakeEngine()
    engine.enqueue("Hello there")
    seen: list[Any] = []
    env = _env(engine, seen)
    assert run(["run", "smol", "-n", "3", "--temperature", "0.2", "Hi", "you"], env=env) == 0
    assert _out(env) == "Hello the\n"  # the fake engine: three characters a token
    assert seen[-1].model == "smol"
    assert engine.samplings[-1].max_tokens == 3 and engine.samplings[-1].temperature == 0.2
    prompt = engine.detokenize(engine.history[-1])
    assert prompt.endswith("Hi you<|im_end|>\n<|im_start|>assistant\n")


def test_run_passes_usage_errors_on_with_the_commands_help(capsys: Any) -> None:
    assert run(["run", "smol", "--bogus", "Hi"], env=_env(FakeEngine())) == 2
    assert "see 'llmcli ask --help'" in capsys.readouterr().err


def test_list_show_rm_are_the_models_commands() -> None:
    lists = [_env(FakeEngine()) for _ in range(2)]
    assert run(["list", "--json"], env=lists[0]) == 0
    assert run(["models", "list", "--json"], env=lists[1]) == 0
    assert _out(lists[0]) == _out(lists[1]) and '"source": "bundled"' in _out(lists[0])
    assert run(["rm", "acme/none-GGUF", "--yes"], env=_env(FakeEngine())) == 1  # not pulled


def test_completion_shell_prints_the_committed_script() -> None:
    for shell, name in (("bash", "llmcli.bash"), ("zsh", "_llmcli"), ("fish", "llmcli.fish")):
        env = _env(FakeEngine())
        assert run(["completion", shell], env=env) == 0
        assert _out(env) == (ROOT / "completions" / name).read_text(), shell


def test_short_v_is_verbose_and_capital_v_the_version() -> None:
    engine = FakeEngine()
    engine.enqueue("ok")
    seen: list[Any] = []
    assert run(["ask", "-v", "x"], env=_env(engine, seen)) == 0
    assert seen[-1].verbose is True
    version = run_cli("-V")
    assert version.returncode == 0 and version.stdout.decode().strip() == f"llmcli {__version__}"


def test_run_answers_piped_stdin_like_ask(model_path: Path) -> None:
    """The real model: ``… | llmcli run MODEL`` is ``… | llmcli ask -m MODEL``, byte for byte."""
    args = ["-n", "8", "--greedy"]
    via_run = run_cli("run", str(model_path), *args, input="Name a colour.")
    via_ask = run_cli("ask", "-m", str(model_path), *args, input="Name a colour.")
    assert via_run.returncode == 0, via_run.stderr
    assert via_run.stdout == via_ask.stdout and via_run.stdout.strip()


def test_run_without_a_prompt_in_a_terminal_chats(model_path: Path) -> None:
    env = dict(os.environ, PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm", NO_COLOR="1")
    child = pexpect.spawn(
        sys.executable, ["-m", "llmcli", "run", str(model_path)], env=env, timeout=240
    )
    child.expect(re.compile(rb"\d+/\d+(?:\x1b\[0m)?>"))  # the chat prompt: MODEL USED/CTX>
    child.send("/exit\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
