"""``save_ask`` (issue 17): ``ask`` answers saved in history when asked for, off by default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmcli.cli.app import run
from llmcli.context import Environment
from llmcli.engine.fake import FakeEngine
from llmcli.session.history import HistoryStore
from llmcli.store.resolve import ResolvedModel
from tests.conftest import in_process_env, run_cli


def _env(engine: FakeEngine, **environ: str) -> Environment:
    def load(flags: Any, settings: Any) -> tuple[FakeEngine, ResolvedModel]:
        return engine, ResolvedModel(path=Path(), name=engine.model_name, source="fake")

    return in_process_env(load, **environ)


def _conversations() -> list[list[tuple[str, str]]]:
    store = HistoryStore()
    found = []
    for info in reversed(store.conversations()):
        found.append([(m.role, m.content) for m in store.load(info.id).messages])
    return found


def test_ask_saves_nothing_by_default() -> None:
    engine = FakeEngine()
    engine.enqueue("one", "two")
    assert run(["ask", "first"], env=_env(engine)) == 0
    assert run(["ask", "second"], env=_env(engine)) == 0
    assert _conversations() == []


def test_save_ask_keeps_each_question_and_answer_as_a_conversation() -> None:
    engine = FakeEngine()
    engine.enqueue("one", "two", "three")
    on = {"LLMCLI_SAVE_ASK": "true", "LLMCLI_SYSTEM": "Be brief."}
    assert run(["ask", "first"], env=_env(engine, **on)) == 0
    assert run(["ask", "second"], env=_env(engine, **on)) == 0
    assert run(["ask", "-c", "more"], env=_env(engine, **on)) == 0  # goes on with the last
    assert _conversations() == [
        [("user", "first"), ("assistant", "one")],
        [("user", "second"), ("assistant", "two"), ("user", "more"), ("assistant", "three")],
    ]
    store = HistoryStore()
    assert store.load(store.last_id()).system == "Be brief."  # type: ignore[arg-type]
    # the saved turn used the same prompt a plain ask builds
    assert "Be brief." in engine.detokenize(engine.history[0])


def test_raw_completions_are_not_conversations() -> None:
    engine = FakeEngine()
    engine.enqueue("1, 2")
    assert run(["ask", "--raw", "0,"], env=_env(engine, LLMCLI_SAVE_ASK="1")) == 0
    assert _conversations() == []


def test_a_bad_value_is_a_usage_error(capsys: Any) -> None:
    assert run(["ask", "x"], env=_env(FakeEngine(), LLMCLI_SAVE_ASK="maybe")) == 2
    assert "LLMCLI_SAVE_ASK: save_ask must be true or false" in capsys.readouterr().err


def test_config_set_save_ask_saves_a_real_answer() -> None:
    """The real model and CLI: ``config set save_ask true``, then ask, then history."""
    assert run_cli("config", "set", "save_ask", "true").returncode == 0
    answer = run_cli("ask", "-n", "4", "--greedy", "Hi")
    assert answer.returncode == 0, answer.stderr
    shown = run_cli("history", "show", "--json", "1")
    assert shown.returncode == 0, shown.stderr
    messages = json.loads(shown.stdout)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["content"] == answer.stdout.decode().rstrip("\n")
