"""The remote engine against a loopback server that misbehaves on purpose.

Every test runs the real CLI in a subprocess against :mod:`tests.openai_stub`
(real HTTP on 127.0.0.1), except the connect-timeout test, which needs a socket
whose accept queue is full and drives the engine in-process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmcli.engine.base import Message, Prompt, Sampling, require_token_level
from llmcli.engine.openai import OpenAIEngine
from llmcli.engine.remote_http import RemoteConfig, display_url, normalize_base_url
from llmcli.engine.sse import MAX_LINE_CHARS, SSEEvent, SSEFormatError, iter_events, iter_lines
from llmcli.errors import ExitStatus, TemporaryFailure, UsageError
from tests.conftest import run_cli
from tests.openai_stub import (
    OpenAIStub,
    cut,
    malformed,
    raw_events,
    stall,
    status,
    stream,
)

SECRET = "sk-test-7f3a9c-do-not-print"


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LLMCLI_API_KEY", "OPENAI_API_KEY", "LLMCLI_BASE_URL", "LLMCLI_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub() as server:
        yield server


def ask(stub: OpenAIStub, *args: str, env: dict[str, str] | None = None, input: str | None = None):
    return run_cli("ask", "--base-url", stub.url, *args, env=env, input=input, timeout=60)


def err(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode()


def assert_clean_error(result: subprocess.CompletedProcess[bytes], status_code: int) -> str:
    assert result.returncode == status_code, err(result)
    text = err(result)
    assert "Traceback" not in text
    assert text.count("llmcli: error:") == 1
    return text


# ---- the happy path, as the stub sees it ---------------------------------------------------


def test_streams_the_answer_and_sends_the_settings(stub: OpenAIStub) -> None:
    stub.script(stream(["Hi", " there", "!"]))
    result = ask(stub, "--greedy", "-n", "9", "--stop", "END", "--seed", "3", "Hello")
    assert result.returncode == 0, err(result)
    assert result.stdout.decode() == "Hi there!\n"
    (request,) = stub.completions()
    assert request.path == "/v1/chat/completions"
    body = request.body or {}
    assert body["messages"][-1] == {"role": "user", "content": "Hello"}
    assert body["model"] == "stub-model"  # the server's only model, from /v1/models
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.0
    assert (body["max_tokens"], body["stop"], body["seed"]) == (9, ["END"], 3)
    assert "authorization" not in request.headers


def test_raw_uses_completions_with_no_16_token_default(stub: OpenAIStub) -> None:
    stub.script(stream([" 5,", " 6"]))
    result = ask(stub, "--raw", input="1, 2, 3, 4,")
    assert result.returncode == 0, err(result)
    (request,) = stub.completions()
    assert request.path == "/v1/completions"
    assert request.body is not None
    assert request.body["prompt"] == "1, 2, 3, 4,"
    assert request.body["max_tokens"] == 512  # llmcli's default cap, not the server's 16


def test_json_reports_server_usage_when_given(stub: OpenAIStub) -> None:
    usage = {
        "prompt_tokens": 17,
        "completion_tokens": 3,
        "prompt_tokens_details": {"cached_tokens": 5},
    }
    stub.script(stream(["a", "b", "c"], finish="length", usage=usage))
    data = json.loads(ask(stub, "--json", "x").stdout)
    assert data["text"] == "abc"
    assert data["finish_reason"] == "length"
    assert data["stats"]["prompt_tokens"] == 17
    assert data["stats"]["generated_tokens"] == 3
    assert data["stats"]["cached_tokens"] == 5


def test_json_counts_chunks_without_usage(stub: OpenAIStub) -> None:
    stub.script(stream(["a", "b", "c", "d"]))
    data = json.loads(ask(stub, "--json", "x").stdout)
    assert data["stats"]["generated_tokens"] == 4
    assert data["stats"]["prompt_tokens"] == 0  # unknown: the server did not say


def test_stop_text_is_held_back_even_if_the_server_ignores_stop(stub: OpenAIStub) -> None:
    stub.script(stream(["one", " two", " EN", "D three"]))
    result = ask(stub, "--stop", "END", "x")
    assert result.stdout.decode() == "one two \n"


def test_chat_sends_the_whole_conversation_each_turn(stub: OpenAIStub) -> None:
    stub.script(stream(["Hello", " Ada"]), stream(["You are", " Ada"]))
    result = run_cli(
        "chat", "--greedy", input="I am Ada\nWho am I?\n", env={"LLMCLI_BASE_URL": stub.url}
    )
    assert result.returncode == 0, err(result)
    assert "You are Ada" in result.stdout.decode()
    second = (stub.completions()[1].body or {})["messages"]
    assert second == [
        {"role": "user", "content": "I am Ada"},
        {"role": "assistant", "content": "Hello Ada"},
        {"role": "user", "content": "Who am I?"},
    ]


# ---- connection and HTTP failures before the first token --------------------------------


def test_connection_refused_exits_69_with_a_hint() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_cli("ask", "--base-url", f"http://127.0.0.1:{port}", "hi")
    text = assert_clean_error(result, ExitStatus.UNAVAILABLE)
    assert f"127.0.0.1:{port}/v1/models" in text
    assert "LLMCLI_BASE_URL" in text


def test_401_exits_1_names_the_variable_and_never_prints_the_key(stub: OpenAIStub) -> None:
    stub.models_reply = status(401, "invalid api key")
    for debug in ("0", "1"):
        result = ask(stub, "hi", env={"LLMCLI_API_KEY": SECRET, "LLMCLI_DEBUG": debug})
        assert result.returncode == ExitStatus.ERROR, err(result)
        assert "LLMCLI_API_KEY" in err(result)
        assert "refused the API key" in err(result)
        assert SECRET not in err(result) and SECRET not in result.stdout.decode()
    assert stub.requests[0].headers["authorization"] == f"Bearer {SECRET}"


def test_openai_api_key_is_the_fallback(stub: OpenAIStub) -> None:
    stub.script(stream(["ok"]))
    result = ask(stub, "hi", env={"OPENAI_API_KEY": "sk-other"})
    assert result.returncode == 0, err(result)
    assert stub.completions()[0].headers["authorization"] == "Bearer sk-other"


def test_404_for_an_unknown_model(stub: OpenAIStub) -> None:
    stub.script(status(404, "The model `nope` does not exist."))
    result = ask(stub, "-m", "nope", "hi")
    text = assert_clean_error(result, ExitStatus.ERROR)
    assert "does not exist" in text
    assert "models list --remote" in text
    assert "does not list model 'nope'" in text  # the notice from /v1/models


def test_429_then_200_retries_before_the_first_token(stub: OpenAIStub) -> None:
    stub.script(status(429, "slow down", {"Retry-After": "0"}), stream(["fine"]))
    result = ask(stub, "hi")
    assert result.returncode == 0, err(result)
    assert result.stdout.decode() == "fine\n"
    assert len(stub.completions()) == 2


def test_persistent_429_exits_75_after_two_retries(stub: OpenAIStub) -> None:
    stub.script(*[status(429, "slow down", {"Retry-After": "0"}) for _ in range(5)])
    result = ask(stub, "hi")
    text = assert_clean_error(result, ExitStatus.TEMP_FAIL)
    assert "rate-limiting" in text and "slow down" in text
    assert len(stub.completions()) == 3


def test_503_is_retried_with_backoff(stub: OpenAIStub) -> None:
    stub.script(status(503, "loading model"), stream(["up"]))
    result = ask(stub, "hi")
    assert result.returncode == 0, err(result)
    assert len(stub.completions()) == 2


def test_500_is_not_retried_and_exits_69(stub: OpenAIStub) -> None:
    stub.script(status(500, "CUDA error: out of memory"), stream(["never"]))
    result = ask(stub, "hi")
    text = assert_clean_error(result, ExitStatus.UNAVAILABLE)
    assert "HTTP 500: CUDA error: out of memory" in text
    assert len(stub.completions()) == 1
    assert result.stdout == b""


def test_400_from_the_server_is_a_data_error(stub: OpenAIStub) -> None:
    stub.script(status(400, "Requested tokens (5000) exceed context window of 2048"))
    text = assert_clean_error(ask(stub, "hi"), ExitStatus.DATA_ERROR)
    assert "exceed context window" in text


def test_silent_server_times_out_with_75(stub: OpenAIStub) -> None:
    stub.script(stall([], seconds=10))
    result = ask(stub, "hi", env={"LLMCLI_TIMEOUT": "0.5"})
    text = assert_clean_error(result, ExitStatus.TEMP_FAIL)
    assert "sent nothing for 0.5 s" in text
    assert "LLMCLI_TIMEOUT" in text


def test_connect_timeout_is_a_temporary_failure() -> None:
    """A listening socket whose accept queue is full drops new SYNs: connect() hangs."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        address = server.getsockname()
        fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(address)
            fillers.append(filler)
        config = RemoteConfig(
            base_url=f"http://{address[0]}:{address[1]}/v1",
            connect_timeout_s=0.3,
            retries=1,
            backoff_s=0.01,
        )
        engine = OpenAIEngine(config, "m")
        try:
            with pytest.raises(TemporaryFailure, match="connecting to .* timed out"):
                engine.generate(Prompt.chat([Message("user", "hi")]), Sampling()).text()
        finally:
            engine.close()
            for filler in fillers:
                filler.close()


# ---- failures after the first token: the partial answer is kept and marked -------------


def test_stream_cut_midway_keeps_the_partial_answer(stub: OpenAIStub) -> None:
    stub.script(cut(["The answer", " is"]))
    result = ask(stub, "hi")
    assert result.stdout.decode().startswith("The answer is")
    text = assert_clean_error(result, ExitStatus.UNAVAILABLE)
    assert "broke" in text or "closed the stream" in text
    assert "incomplete" in text


def test_stream_cut_midway_in_json(stub: OpenAIStub) -> None:
    stub.script(cut(["The answer", " is"]))
    result = ask(stub, "--json", "hi")
    assert result.returncode == ExitStatus.UNAVAILABLE
    data = json.loads(result.stdout)
    assert data["text"] == "The answer is"
    assert data["finish_reason"] == "error"
    assert data["stats"]["error"]
    assert data["stats"]["generated_tokens"] == 2


def test_stream_ending_without_finish_or_done_is_an_error(stub: OpenAIStub) -> None:
    stub.script(stream(["half"], finish="", done=False))
    data = json.loads(ask(stub, "--json", "hi").stdout)
    assert data["finish_reason"] == "error"
    assert "before the answer was complete" in data["stats"]["error"]


def test_cut_before_the_first_token_raises(stub: OpenAIStub) -> None:
    stub.script(cut([]))
    result = ask(stub, "hi")
    assert_clean_error(result, ExitStatus.UNAVAILABLE)
    assert result.stdout == b""


def test_malformed_sse_midway(stub: OpenAIStub) -> None:
    stub.script(malformed(["good", " start"], b'{"choices": "this is NDJSON, not SSE"}'))
    result = ask(stub, "--json", "hi")
    assert result.returncode == ExitStatus.UNAVAILABLE
    data = json.loads(result.stdout)
    assert data["text"] == "good start"
    assert data["finish_reason"] == "error"
    assert "malformed event stream" in data["stats"]["error"]
    assert "line 5" in data["stats"]["error"]
    assert "never" not in result.stdout.decode()


def test_malformed_json_before_the_first_token(stub: OpenAIStub) -> None:
    stub.script(raw_events(b"data: {not json\n\n"))
    text = assert_clean_error(ask(stub, "hi"), ExitStatus.UNAVAILABLE)
    assert "not JSON" in text


def test_error_event_in_the_stream(stub: OpenAIStub) -> None:
    stub.script(raw_events(b'data: {"error": {"message": "model crashed"}}\n\n'))
    text = assert_clean_error(ask(stub, "hi"), ExitStatus.UNAVAILABLE)
    assert "the server reported an error: model crashed" in text


def test_stall_after_the_first_token_with_pings_times_out(stub: OpenAIStub) -> None:
    stub.script(stall(["partial"], seconds=20, ping=True))
    result = ask(stub, "--json", "hi", env={"LLMCLI_TIMEOUT": "0.5"})
    assert result.returncode == ExitStatus.UNAVAILABLE, err(result)
    data = json.loads(result.stdout)
    assert data["text"] == "partial"
    assert data["finish_reason"] == "error"
    assert "no token from the server for 0.5 s" in data["stats"]["error"]


def test_retries_never_happen_after_the_first_token(stub: OpenAIStub) -> None:
    stub.script(cut(["once"]), stream(["twice"]))
    result = ask(stub, "hi")
    assert result.returncode == ExitStatus.UNAVAILABLE
    assert len(stub.completions()) == 1


# ---- Ctrl-C ----------------------------------------------------------------------------------


def test_ctrl_c_closes_the_http_stream(stub: OpenAIStub) -> None:
    stub.script(stall(["thinking"], seconds=60, ping=False))
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmcli", "ask", "--base-url", stub.url, "hi"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.read(len("thinking")) == b"thinking"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == ExitStatus.INTERRUPTED
        assert stub.disconnected.wait(timeout=30), "the server never saw the client leave"
    finally:
        proc.kill()
        proc.wait()


def test_cancel_closes_a_suspended_stream(stub: OpenAIStub) -> None:
    """The REPL's path: stop iterating, call cancel(); the connection must close."""
    stub.script(stall(["a", "b"], seconds=60))
    engine = OpenAIEngine(RemoteConfig(base_url=stub.url), "m")
    try:
        generation = engine.generate(Prompt.chat([Message("user", "x")]), Sampling())
        assert next(iter(generation)).text == "a"
        generation.cancel()
        assert stub.disconnected.wait(timeout=30)
        assert generation.stats.finish_reason == "interrupted"
    finally:
        engine.close()


# ---- what cannot work remotely says so ----------------------------------------------------


@pytest.mark.parametrize(
    "flag",
    [["--ctx", "512"], ["--gpu-layers", "0"], ["--threads", "2"], ["--chat-format", "chatml"]],
)
def test_local_only_flags_are_refused(stub: OpenAIStub, flag: list[str]) -> None:
    text = assert_clean_error(ask(stub, *flag, "hi"), ExitStatus.USAGE)
    assert f"{flag[0]} is not available with a remote engine" in text


def test_engine_openai_without_a_url() -> None:
    text = assert_clean_error(run_cli("ask", "--engine", "openai", "hi"), ExitStatus.USAGE)
    assert "LLMCLI_BASE_URL" in text


def test_unknown_engine() -> None:
    assert_clean_error(run_cli("ask", "--engine", "tpu", "hi"), ExitStatus.USAGE)


def test_bad_base_url() -> None:
    text = assert_clean_error(run_cli("ask", "--base-url", "gpu-box:8080", "hi"), ExitStatus.USAGE)
    assert "not an http(s) URL" in text


def test_token_level_operations_raise_usage_errors() -> None:
    engine = OpenAIEngine(RemoteConfig(base_url="http://127.0.0.1:9/v1"), "m")
    assert engine.token_level() is None  # asked for explicitly, never probed
    for call in (
        lambda: require_token_level(engine, "tokenizing"),
        lambda: require_token_level(engine, "next-token probabilities"),
        lambda: engine.generate([1, 2, 3], Sampling()),
        lambda: engine.generate(Prompt.tokens([1, 2, 3]), Sampling()),
    ):
        with pytest.raises(UsageError, match="not available with a remote engine"):
            call()
    engine.close()


def test_key_is_not_in_reprs() -> None:
    config = RemoteConfig(base_url="http://u:pw@h:1/v1", api_key=SECRET)
    engine = OpenAIEngine(config, "m")
    assert SECRET not in repr(config) and SECRET not in repr(engine)
    assert "pw" not in repr(engine)
    engine.close()


# ---- named remotes in the config file -------------------------------------------------------


def write_config(home: Path, text: str) -> None:
    path = home / "config" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_named_remote_from_the_config_file(stub: OpenAIStub, llmcli_home: Path) -> None:
    write_config(
        llmcli_home,
        f'[remotes.box]\nbase_url = "{stub.url}"\nmodel = "default-m"\napi_key_env = "BOX_KEY"\n',
    )
    stub.script(stream(["one"]), stream(["two"]))
    first = run_cli("ask", "-m", "box/org/other-m", "hi", env={"BOX_KEY": "k1"})
    second = run_cli("ask", "-m", "box", "hi", env={"BOX_KEY": "k1"})
    assert (first.returncode, second.returncode) == (0, 0), err(first) + err(second)
    models = [(r.body or {}).get("model") for r in stub.completions()]
    assert models == ["org/other-m", "default-m"]
    assert stub.completions()[0].headers["authorization"] == "Bearer k1"


def test_named_remote_with_engine_local_is_refused(stub: OpenAIStub, llmcli_home: Path) -> None:
    write_config(llmcli_home, f'[remotes.box]\nbase_url = "{stub.url}"\n')
    result = run_cli("ask", "--engine", "local", "-m", "box/m", "hi")
    assert_clean_error(result, ExitStatus.USAGE)


def test_bad_remote_table_names_the_line(llmcli_home: Path) -> None:
    write_config(llmcli_home, '[remotes.box]\nbase_url = "http://h:1"\ntimeout = "soon"\n')
    text = assert_clean_error(run_cli("ask", "-m", "box/m", "hi"), ExitStatus.DATA_ERROR)
    assert "line 3" in text and "timeout" in text


def test_help_imports_no_http_client() -> None:
    code = (
        "import sys\nfrom llmcli.cli.app import run\nrun(['ask', '--help'])\n"
        "bad = [m for m in ('httpx2', 'llama_cpp') if m in sys.modules]\n"
        "sys.exit(f'imported {bad}' if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()


# ---- the event-stream parser on its own -----------------------------------------------------


def parse(*chunks: bytes, max_line: int = MAX_LINE_CHARS) -> list[SSEEvent]:
    return list(iter_events(iter_lines(chunks, max_line=max_line)))


def test_sse_line_ends_split_across_chunks() -> None:
    events = parse(b"data: a\r", b"\n\r\ndata: b\rdata: c\r\r", b"data:d\n", b"\n")
    assert [e.data for e in events] == ["a", "b\nc", "d"]


def test_sse_comments_bom_fields_and_unknown_names() -> None:
    stream = "\ufeff: ping\nevent: delta\nid: 7\nretry: 10\nx-extra: ok\ndata\ndata: é\n\n"
    (event,) = parse(stream.encode())
    assert (event.event, event.id, event.data) == ("delta", "7", "\né")


def test_sse_unfinished_event_at_the_end_is_dropped() -> None:
    assert [e.data for e in parse(b'data: 1\n\ndata: {"cut')] == ["1"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'data: 1\n\n{"choices": []}\n\n', "line 3: not a server-sent event field"),
        (b"data: \xff\xfe\n\n", "not UTF-8"),
        (b"<html><body>502 Bad Gateway</body></html>\n", "line 1: not a server-sent event"),
        (b"data: " + b"x" * 300, "longer than 100 characters"),
    ],
)
def test_sse_malformed_input_names_the_line(raw: bytes, reason: str) -> None:
    with pytest.raises(SSEFormatError, match=reason):
        parse(raw, max_line=100)


@given(st.lists(st.integers(min_value=0, max_value=200), max_size=12))
def test_sse_chunking_never_changes_the_events(cuts: list[int]) -> None:
    raw = 'data: {"a": 1}\r\n\r\n: ping\n\ndata: héllo 🙂\ndata: two\r\rdata: [DONE]\n\n'.encode()
    points = sorted({min(c, len(raw)) for c in cuts})
    chunks = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    assert parse(*chunks) == parse(raw)


@pytest.mark.parametrize(
    ("given_url", "root"),
    [
        ("http://h:8080", "http://h:8080/v1"),
        ("http://h:8080/", "http://h:8080/v1"),
        ("http://h:8080/v1/", "http://h:8080/v1"),
        ("https://proxy/api/openai", "https://proxy/api/openai"),
    ],
)
def test_base_url_normalization(given_url: str, root: str) -> None:
    assert normalize_base_url(given_url) == root


def test_display_url_hides_credentials() -> None:
    assert display_url("http://user:pw@h:1/v1") == "http://h:1/v1"
