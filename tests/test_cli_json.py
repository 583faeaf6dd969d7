"""One JSON vocabulary (issue 17, docs/json.md): the same key for the same thing everywhere.

Tokens are ``{"id", "text", …}`` (in ``top`` too), counts end in ``_count`` and plural
nouns are lists, and every object about a loaded model has the canonical ``model`` plus
the ``ref`` the user typed. The real model answers tokenize, detokenize, next and ask.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmcli.cli.app import run
from llmcli.context import Environment
from llmcli.session.conversation import ChatMessage, Conversation
from llmcli.session.history import HistoryStore
from tests.conftest import in_process_env, run_cli

OLD_KEYS = {"piece", "token", "count", "model_ref", "layers", "layer", "quant", "model_path"}
"""Keys the vocabulary replaced: piece/token → text, count → *_count, model_ref → ref, …"""
LISTS = {"tokens", "messages", "steps", "blocks", "embeddings", "ids", "top", "candidates"}


def check_vocabulary(data: Any) -> None:
    """Walk any --json output: no replaced key, lists where the name is plural, tokens whole."""
    if isinstance(data, list):
        for item in data:
            check_vocabulary(item)
        return
    if not isinstance(data, dict):
        return
    assert not OLD_KEYS & set(data), OLD_KEYS & set(data)
    for key, value in data.items():
        if key in LISTS:
            assert isinstance(value, list), (key, value)
        if key.endswith("_count"):
            assert value is None or isinstance(value, int), (key, value)
        if key in ("top", "candidates"):
            assert all({"id", "text"} <= set(t) for t in value), value
        check_vocabulary(value)


def cli_json(*args: str, input: str | None = None) -> Any:
    result = run_cli(*args, input=input)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    check_vocabulary(data)
    return data


@pytest.fixture
def alias(model_path: Path) -> str:
    assert run_cli("models", "alias", "smol", str(model_path)).returncode == 0
    return "smol"


def test_tokenize_and_detokenize(model_path: Path, alias: str) -> None:
    data = cli_json("tokenize", "--json", "-m", alias, "Hi there")
    stem = model_path.name.removesuffix(".gguf")
    assert list(data) == [
        "model", "ref", "token_count", "bos_added", "eos_added", "ids", "tokens",
    ]  # fmt: skip
    assert (data["model"], data["ref"]) == (stem, alias)  # the alias resolved, as typed
    assert data["token_count"] == len(data["ids"]) == 2
    assert data["tokens"][0] == {"position": 0, "id": 26843, "text": "Hi", "bytes": "4869"}
    back = cli_json("detokenize", "--json", "-m", str(model_path), *map(str, data["ids"]))
    assert back == {
        "model": stem,
        "ref": str(model_path),
        "token_count": 2,
        "ids": data["ids"],
        "text": "Hi there",
    }


def test_next_tokens_have_id_and_text(model_path: Path) -> None:
    data = cli_json("next", "--json", "--top", "3", "--steps", "2", "Hi")
    assert list(data) == ["model", "ref", "raw", "prompt_tokens", "steps", "generated_ids", "text"]
    assert data["model"] == model_path.name.removesuffix(".gguf") and data["ref"] is None
    step = data["steps"][0]
    assert set(step["chosen"]) == {"id", "text"}
    assert set(step["candidates"][0]) == {"rank", "id", "text", "prob", "logprob", "argmax"}
    assert step["chosen"] == {k: step["candidates"][0][k] for k in ("id", "text")}


def test_ask_logprobs_top_has_ids_like_next(model_path: Path) -> None:
    answer = cli_json("ask", "--json", "--greedy", "-n", "2", "--logprobs", "3", "Hi")
    assert list(answer) == ["model", "ref", "text", "finish_reason", "stats", "tokens"]
    first = answer["tokens"][0]
    assert set(first) == {"id", "text", "logprob", "top"}
    assert all(set(t) == {"id", "text", "logprob"} for t in first["top"])
    nxt = cli_json("next", "--json", "--top", "3", "Hi")
    candidates = nxt["steps"][0]["candidates"]
    assert [t["id"] for t in first["top"]] == [c["id"] for c in candidates]
    assert [t["text"] for t in first["top"]] == [c["text"] for c in candidates]


def _env() -> Environment:
    return in_process_env(None)


def _json_of(*argv: str) -> Any:
    env = _env()
    assert run(list(argv), env=env) == 0
    data = json.loads(env.stdout.getvalue())  # type: ignore[attr-defined]
    check_vocabulary(data)
    return data


def test_history_counts_are_counts_and_messages_are_lists() -> None:
    conversation = Conversation(messages=[ChatMessage("user", "a"), ChatMessage("assistant", "b")])
    HistoryStore().save_new(conversation, model="m", model_ref="smol")
    (row,) = _json_of("history", "list", "--json")
    assert row["message_count"] == 2 and "messages" not in row
    assert (row["model"], row["ref"]) == ("m", "smol")
    shown = _json_of("history", "show", "--json", str(row["id"]))
    assert shown["message_count"] == 2 and [m["content"] for m in shown["messages"]] == ["a", "b"]


def test_models_list_and_show_name_the_model_alike(model_path: Path) -> None:
    (bundled,) = _json_of("models", "list", "--json")
    assert bundled["model"] == model_path.name.removesuffix(".gguf")
    assert {"file_size", "quantization", "parameters"} <= set(bundled)
    shown = _json_of("models", "show", "--json")
    assert (shown["model"], shown["ref"]) == (bundled["model"], None)
    assert shown["file_size"] == bundled["file_size"]
    assert shown["general_name"]  # the file's general.name, not the model's name
