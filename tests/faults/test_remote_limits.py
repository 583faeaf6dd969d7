"""Remote servers are bounded: a server that ignores ``max_tokens`` or reports nonsense
usage does not make llmcli print more than ``-n`` tokens or negative counts; bodies,
events, byte trickles, redirect loops, bad encodings and odd ``top_logprobs`` each end
in one clear line with a documented exit code, with memory bounded by llmcli's limits.

Every test runs the real CLI in a subprocess against :mod:`tests.openai_stub` (real
HTTP on 127.0.0.1).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from llmcli.engine.openai_stream import MAX_TOP_LOGPROBS
from llmcli.engine.remote_http import MAX_JSON_BODY
from llmcli.engine.sse import MAX_EVENT_CHARS
from llmcli.errors import ExitStatus
from tests.conftest import run_cli
from tests.openai_stub import (
    OpenAIStub,
    bad_gzip,
    endless_event,
    endless_models,
    event,
    raw_events,
    redirect_loop,
    stream,
    token_chunk,
    trickle,
)


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub() as server:
        yield server


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LLMCLI_API_KEY", "OPENAI_API_KEY", "LLMCLI_BASE_URL", "LLMCLI_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)


def test_a_server_that_ignores_max_tokens_is_stopped_at_n(stub: OpenAIStub) -> None:
    stub.script(stream([f" t{i}" for i in range(50)]))
    result = run_cli("ask", "--base-url", stub.url, "-n", "5", "--json", "hi", timeout=60)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["text"] == "".join(f" t{i}" for i in range(5))
    assert data["finish_reason"] == "length"


def test_negative_or_absurd_usage_counts_are_ignored(stub: OpenAIStub) -> None:
    usage = {
        "prompt_tokens": -5,
        "completion_tokens": True,
        "prompt_tokens_details": {"cached_tokens": 2**40},
    }
    stub.script(stream(["a", "b", "c"], usage=usage))
    result = run_cli("ask", "--base-url", stub.url, "--json", "hi", timeout=60)
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    flat = json.dumps(stats)
    assert "-5" not in flat and str(2**40) not in flat
    assert stats["text"] == "abc"


# ---- bounded reads: bodies, events, trickles, redirects, encodings ---------------------------


def ask(stub: OpenAIStub, *args: str, env: dict[str, str] | None = None):
    return run_cli("ask", "--base-url", stub.url, *args, env=env, timeout=60)


def one_clean_error(result: subprocess.CompletedProcess[bytes], status: int) -> str:
    text = result.stderr.decode()
    assert result.returncode == status, text
    assert "Traceback" not in text and "internal error" not in text
    assert text.count("llmcli: error:") == 1 and text.strip().count("\n") == 0, text
    return text


def test_a_models_list_that_never_ends_is_refused_at_its_bound(stub: OpenAIStub) -> None:
    stub.models_reply = endless_models()
    text = one_clean_error(ask(stub, "hi"), ExitStatus.UNAVAILABLE)
    assert f"more than {MAX_JSON_BODY // 2**20} MiB" in text
    assert stub.disconnected.wait(10)  # llmcli hung up instead of reading on


def test_models_list_remote_is_bounded_too(stub: OpenAIStub) -> None:
    stub.models_reply = endless_models()
    result = run_cli("models", "list", "--remote", stub.url, timeout=60)
    assert f"more than {MAX_JSON_BODY // 2**20} MiB" in one_clean_error(
        result, ExitStatus.UNAVAILABLE
    )


def test_an_event_that_never_ends_is_refused_at_its_bound(stub: OpenAIStub) -> None:
    stub.script(endless_event([]))
    text = one_clean_error(ask(stub, "hi"), ExitStatus.UNAVAILABLE)
    assert f"event longer than {MAX_EVENT_CHARS} characters" in text
    assert stub.disconnected.wait(10)


def test_an_event_that_never_ends_after_tokens_keeps_the_partial_answer(stub: OpenAIStub) -> None:
    stub.script(endless_event(["partial"]))
    result = ask(stub, "--json", "hi")
    assert result.returncode == ExitStatus.UNAVAILABLE, result.stderr.decode()
    data = json.loads(result.stdout)
    assert data["text"] == "partial" and data["finish_reason"] == "error"
    assert "event longer than" in data["stats"]["error"]


@pytest.mark.parametrize("tokens", [[], ["partial"]], ids=["before", "after-first-token"])
def test_a_server_trickling_bytes_without_a_newline_hits_llmcli_timeout(
    stub: OpenAIStub, tokens: list[str]
) -> None:
    stub.script(trickle(tokens))
    result = ask(stub, "--json", "hi", env={"LLMCLI_TIMEOUT": "1"})
    if not tokens:
        text = one_clean_error(result, ExitStatus.TEMP_FAIL)
        assert "no token from the server for 1 s" in text and "LLMCLI_TIMEOUT" in text
    else:
        assert result.returncode == ExitStatus.UNAVAILABLE, result.stderr.decode()
        data = json.loads(result.stdout)
        assert data["text"] == "partial" and data["finish_reason"] == "error"
        assert "no token from the server for 1 s" in data["stats"]["error"]
    assert stub.disconnected.wait(10)


@pytest.mark.parametrize("where", ["models", "completions"])
def test_a_redirect_loop_is_a_clear_error(stub: OpenAIStub, where: str) -> None:
    if where == "models":
        stub.models_reply = redirect_loop()
    else:
        stub.script(*[redirect_loop()] * 30)
    text = one_clean_error(ask(stub, "hi"), ExitStatus.UNAVAILABLE)
    assert "redirected more than" in text


@pytest.mark.parametrize("where", ["models", "completions"])
def test_a_body_that_claims_gzip_and_is_not_is_a_clear_error(stub: OpenAIStub, where: str) -> None:
    if where == "models":
        stub.models_reply = bad_gzip(event_stream=False)
    else:
        stub.script(bad_gzip(event_stream=True))
    text = one_clean_error(ask(stub, "hi"), ExitStatus.UNAVAILABLE)
    assert "could not be decoded" in text and "gzip" in text


def _logprob_chunk(content: Any, text: str = "a") -> bytes:
    choice = {"index": 0, "delta": {"content": text}, "logprobs": {"content": content}}
    return event({"object": "chat.completion.chunk", "choices": [choice]})


def _completion_chunk(logprobs: Any, text: str = "a") -> bytes:
    return event({"object": "text_completion", "choices": [{"text": text, "logprobs": logprobs}]})


ODD_CHAT_LOGPROBS = {
    "top-not-a-list": [{"token": "a", "logprob": -0.1, "top_logprobs": {"a": -0.1}}],
    "top-a-string": [{"token": "a", "logprob": -0.1, "top_logprobs": "aaaa"}],
    "wrong-types": [{"token": ["a"], "logprob": "x", "top_logprobs": [{"token": 1}]}],
    "too-big-for-a-float": [{"token": "a", "logprob": 10**400, "top_logprobs": []}],
    "not-finite": [{"token": "a", "logprob": float("-inf"), "top_logprobs": []}],
    "huge": [
        {
            "token": "a",
            "logprob": -0.1,
            "top_logprobs": [{"token": f"t{i}", "logprob": -1.0} for i in range(10_000)],
        }
    ],
}


@pytest.mark.parametrize("content", ODD_CHAT_LOGPROBS.values(), ids=ODD_CHAT_LOGPROBS.keys())
def test_oddly_shaped_chat_top_logprobs_keep_the_text_and_valid_json(
    stub: OpenAIStub, content: Any
) -> None:
    raw = json.dumps(content, allow_nan=True).replace("-Infinity", "-1e999").encode()
    chunk = _logprob_chunk(None).replace(b'"content": null', b'"content": ' + raw)
    stub.script(raw_events(chunk, event(token_chunk(True, "", "stop")), event("[DONE]")))
    result = ask(stub, "--json", "--logprobs", "3", "hi")
    assert result.returncode == 0, result.stderr.decode()
    data = json.loads(result.stdout, parse_constant=_refuse)  # strict JSON: no NaN/Infinity
    assert data["text"] == "a"
    for token in data.get("tokens") or []:
        assert len(token.get("top") or []) <= MAX_TOP_LOGPROBS


ODD_COMPLETION_LOGPROBS = {
    "top-a-list-of-lists": {"tokens": ["a"], "token_logprobs": [-0.1], "top_logprobs": [[1, 2]]},
    "top-not-a-list": {"tokens": ["a"], "token_logprobs": [-0.1], "top_logprobs": 7},
    "values-not-numbers": {"tokens": ["a"], "token_logprobs": ["x"], "top_logprobs": None},
    "too-big": {"tokens": ["a"], "token_logprobs": [10**400], "top_logprobs": [{"a": 10**400}]},
}


@pytest.mark.parametrize(
    "logprobs", ODD_COMPLETION_LOGPROBS.values(), ids=ODD_COMPLETION_LOGPROBS.keys()
)
def test_oddly_shaped_completion_top_logprobs_keep_the_text(
    stub: OpenAIStub, logprobs: Any
) -> None:
    end = event(token_chunk(False, "", "stop"))
    stub.script(raw_events(_completion_chunk(logprobs), end, event("[DONE]")))
    result = ask(stub, "--raw", "--json", "--logprobs", "3", "hi")
    assert result.returncode == 0, result.stderr.decode()
    data = json.loads(result.stdout, parse_constant=_refuse)
    assert data["text"] == "a"


def _refuse(name: str) -> Any:
    raise AssertionError(f"--json printed {name}, which is not JSON")
