"""The real CLI run in-process with the fake engine: one injected Environment, no subprocess.

Beside the subprocess tests (the real model, the real process boundary), these check
the command layer's logic quickly: flags reach the engine, output goes to the given
buffers, ``ask -c`` saves both messages, errors map to exit codes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmcli.cli.app import run
from llmcli.context import Environment
from llmcli.engine.fake import FakeEngine
from llmcli.errors import ExitStatus
from llmcli.session.history import HistoryStore
from llmcli.store.resolve import ResolvedModel
from tests.conftest import in_process_env


def _env(engine: FakeEngine) -> Environment:
    def load(flags: Any, settings: Any) -> tuple[FakeEngine, ResolvedModel]:
        return engine, ResolvedModel(path=Path(), name=engine.model_name, source="fake")

    return in_process_env(load)


def test_ask_streams_the_fake_answer_to_the_given_stdout() -> None:
    engine = FakeEngine()
    engine.enqueue("Hello there")
    env = _env(engine)
    assert run(["ask", "--temperature", "0.3", "--presence-penalty", "0.5", "Hi"], env=env) == 0
    assert env.stdout.getvalue() == "Hello there\n"  # type: ignore[attr-defined]
    sampling = engine.samplings[-1]
    assert (sampling.temperature, sampling.presence_penalty) == (0.3, 0.5)
    assert engine.detokenize(engine.history[-1]).endswith("Hi<|im_end|>\n<|im_start|>assistant\n")


def test_ask_json_and_stats_in_process() -> None:
    engine = FakeEngine()
    engine.enqueue("abcdef")
    env = _env(engine)
    assert run(["ask", "--json", "--stats", "-n", "1", "x"], env=env) == 0
    data = json.loads(env.stdout.getvalue())  # type: ignore[attr-defined]
    assert data["text"] == "abc" and data["finish_reason"] == "length"
    assert "1 tokens" in env.stderr.getvalue() or "1 token" in env.stderr.getvalue()  # type: ignore[attr-defined]


def test_ask_continue_saves_both_messages_in_process() -> None:
    engine = FakeEngine()
    engine.enqueue("first answer", "second answer")
    assert run(["ask", "-c", "one"], env=_env(engine)) == 0
    assert run(["ask", "-c", "two"], env=_env(engine)) == 0
    store = HistoryStore()
    conversation = store.load(store.last_id())  # type: ignore[arg-type]
    assert [m.content for m in conversation.messages] == [
        "one",
        "first answer",
        "two",
        "second answer",
    ]
    # the second prompt holds the first exchange
    assert "first answer" in engine.detokenize(engine.history[-1])


def test_usage_errors_map_to_exit_2_in_process() -> None:
    env = _env(FakeEngine())
    assert run(["ask", "--raw", "--system", "s", "x"], env=env) == ExitStatus.USAGE
    assert run(["ask", "--top-p", "2", "x"], env=env) == ExitStatus.USAGE


def test_the_same_environment_reaches_every_command() -> None:
    env = _env(FakeEngine())
    assert run(["config", "path"], env=env) == 0
    assert env.stdout.getvalue().strip().endswith("config.toml")  # type: ignore[attr-defined]


def test_embed_loads_in_process_and_refuses_an_engine_without_embeddings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The engine choice is the service's (load_embeddings): a local model is loaded in
    this process whatever keep_alive says; an engine with no embeddings is a usage error."""
    engine = FakeEngine()
    seen: list[Any] = []

    def load(flags: Any, settings: Any) -> tuple[FakeEngine, ResolvedModel]:
        seen.append(flags.keep_alive)
        return engine, ResolvedModel(path=Path(), name=engine.model_name, source="fake")

    env = _env(engine)
    env.engine_loader = load
    env.environ["LLMCLI_KEEP_ALIVE"] = "5m"
    assert run(["embed", "a", "b"], env=env) == ExitStatus.USAGE
    assert seen == ["0"]
    assert "gives no embeddings here" in capsys.readouterr().err  # the process's error line
