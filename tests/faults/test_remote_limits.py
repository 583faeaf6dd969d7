"""Remote servers are bounded: a server that ignores ``max_tokens`` or reports nonsense
usage does not make llmcli print more than ``-n`` tokens or negative counts."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import run_cli
from tests.openai_stub import OpenAIStub, stream


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
