"""The engine seam and the service layer: one settings declaration, one turn streamer,
prompts that engines (local and remote) understand, and remote chats trimmed like local ones."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from llmcli.config import KEYS, Settings
from llmcli.context import Environment
from llmcli.engine.base import (
    Engine,
    Generation,
    GenerationStats,
    Message,
    Prompt,
    Sampling,
    TokenLevel,
    TokenPiece,
    require_token_level,
)
from llmcli.engine.fake import FakeEngine
from llmcli.engine.openai import OpenAIEngine
from llmcli.engine.remote_http import RemoteConfig
from llmcli.engine.remote_tokens import estimate_tokens
from llmcli.errors import ServiceUnavailable, Terminated, UsageError
from llmcli.knobs import KNOBS
from llmcli.repl.commands import PARAMS, apply_setting
from llmcli.service.sampling import SamplingFlags, build_sampling
from llmcli.service.turn import TurnResult, stream_turn
from llmcli.session.conversation import Conversation, PromptLog, fit_prompt
from tests.conftest import run_cli
from tests.openai_stub import OpenAIStub, model_list, stream

# -- one declaration of the knobs -----------------------------------------------------------


def test_sampling_defaults_come_from_the_knob_table() -> None:
    sampling = Sampling()
    for knob in KNOBS.values():
        assert getattr(sampling, knob.name) == knob.default


def test_config_keys_and_settings_derive_from_the_knobs() -> None:
    config_knobs = {k.name for k in KNOBS.values() if k.config}
    assert config_knobs <= set(KEYS)
    settings = Settings()
    for name in config_knobs:
        assert getattr(settings, name) == KNOBS[name].default
        assert KEYS[name].env_var == KNOBS[name].env_var


def test_set_table_is_the_knob_table() -> None:
    assert set(PARAMS) == set(KNOBS)
    sampling = Sampling()
    assert apply_setting(sampling, "top_p 0.5") == "top_p = 0.5"
    with pytest.raises(UsageError, match="top_p must be a number from 0 to 1"):
        apply_setting(sampling, "top_p 2")


def test_flags_win_over_settings_and_unset_flags_do_not() -> None:
    settings = Settings()
    settings.set("top_k", 7)
    sampling = build_sampling(SamplingFlags(top_p=0.3), settings)
    assert (sampling.top_p, sampling.top_k) == (0.3, 7)


def test_every_knob_is_an_option_of_ask_and_chat() -> None:
    for command in ("ask", "chat"):
        text = run_cli(command, "--help", env={"COLUMNS": "200"}).stdout.decode()
        for knob in KNOBS.values():
            assert knob.option in text, (command, knob.option)


def test_both_engines_send_every_knob_they_know() -> None:
    sampling = Sampling(top_k=3, min_p=0.2)
    llama = sampling.knob_values("llama")
    remote = sampling.knob_values("remote")
    for knob in KNOBS.values():
        if knob.llama and getattr(sampling, knob.name) is not None:
            assert knob.llama in llama
        if knob.remote and getattr(sampling, knob.name) is not None:
            assert knob.remote in remote
    assert Sampling(greedy=True).knob_values("llama")["temp"] == 0.0


# -- the engine protocol ----------------------------------------------------------------------


def test_engines_implement_the_whole_protocol() -> None:
    fake = FakeEngine()
    remote = OpenAIEngine(RemoteConfig(base_url="http://127.0.0.1:9/v1"), "m")
    try:
        for engine in (fake, remote):
            assert isinstance(engine, Engine)
            assert engine.notices == []
        assert isinstance(fake.token_level(), TokenLevel)
        assert remote.token_level() is None
        with pytest.raises(UsageError, match="tokenizing is not available with a remote"):
            require_token_level(remote, "tokenizing")
    finally:
        remote.close()


def test_a_fake_engine_takes_every_kind_of_prompt() -> None:
    engine = FakeEngine()
    messages = [Message("user", "hi")]
    assert engine.count_tokens(Prompt.chat(messages)) == len(engine.chat_prompt(messages))
    assert engine.count_tokens(Prompt.raw("abc")) == 3
    assert engine.count_tokens(Prompt.tokens([1, 2])) == engine.count_tokens([1, 2]) == 2


def test_the_estimate_over_counts_english() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 20
    assert estimate_tokens(Prompt.raw(text)) > len(text) / 4


# -- streaming one turn -----------------------------------------------------------------------


class _Sink:
    def __init__(self) -> None:
        self.text, self.finished, self.aborted = "", False, False

    def feed(self, text: str) -> None:
        self.text += text

    def finish(self) -> None:
        self.finished = True

    def abort(self) -> None:
        self.aborted = True


class _Raising(FakeEngine):
    """Yields two pieces, then raises ``error`` inside the stream."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error
        self.cancelled = False

    def generate(self, prompt, sampling):  # type: ignore[no-untyped-def]
        stats = GenerationStats()

        def pieces() -> Iterator[TokenPiece]:
            yield TokenPiece("a", 1)
            yield TokenPiece("b", 2)
            raise self.error

        return Generation(pieces(), stats, on_cancel=lambda: setattr(self, "cancelled", True))


def test_a_turn_streams_into_the_sink_and_is_saved_once() -> None:
    engine = FakeEngine()
    engine.enqueue("hello world")
    saved: list[TurnResult] = []
    sink = _Sink()
    result = stream_turn(engine, Prompt.raw("x"), Sampling(), sink, save=saved.append)
    assert (sink.text, sink.finished, result.interrupted) == ("hello world", True, False)
    assert saved == [result]


@pytest.mark.parametrize(
    ("error", "stopped"), [(KeyboardInterrupt(), "interrupt"), (Terminated("t"), "terminate")]
)
def test_ctrl_c_and_sigterm_cancel_and_save_what_came(error: BaseException, stopped: str) -> None:
    engine = _Raising(error)
    saved: list[TurnResult] = []
    sink = _Sink()
    result = stream_turn(engine, [1], Sampling(), sink, save=saved.append)
    assert result.stopped == stopped and result.text == "ab"
    assert engine.cancelled and sink.aborted and not sink.finished
    assert saved == [result] and saved[0].interrupted


def test_a_failure_is_raised_after_saving_the_partial_answer() -> None:
    engine = _Raising(ServiceUnavailable("down"))
    saved: list[TurnResult] = []
    with pytest.raises(ServiceUnavailable):
        stream_turn(engine, [1], Sampling(), _Sink(), save=saved.append)
    assert len(saved) == 1 and saved[0].interrupted and saved[0].text == "ab"


# -- a remote conversation is trimmed like a local one ----------------------------------------


def _long_conversation() -> Conversation:
    conversation = Conversation(system="SYS")
    for i in range(6):
        conversation.add("user", f"question {i} " * 5)
        conversation.add("assistant", f"answer {i} " * 5)
    conversation.add("user", "last question")
    return conversation


@pytest.mark.parametrize("tokenizer", [True, False], ids=["server-tokenizer", "estimate"])
def test_a_remote_conversation_is_trimmed_by_the_servers_count(tokenizer: bool) -> None:
    with OpenAIStub(tokenizer=tokenizer) as stub:
        engine = OpenAIEngine(RemoteConfig(base_url=stub.url), "m", n_ctx=80)
        try:
            conversation = _long_conversation()
            prompt = fit_prompt(engine, conversation, PromptLog(), reserve=10)
            assert prompt.dropped > 0
            assert prompt.n_tokens + 10 <= engine.n_ctx
            assert prompt.messages[0] == Message("system", "SYS")
            assert prompt.messages[-1] == Message("user", "last question")
            assert Message("user", "question 0 " * 5) not in prompt.messages
            assert isinstance(prompt.input, Prompt)
            paths = {r.path for r in stub.requests}
            assert ("/tokenize" in paths) == tokenizer
        finally:
            engine.close()


def test_a_remote_chat_that_outgrows_the_context_drops_the_oldest_exchange() -> None:
    """End to end: the server says its window is 48 tokens and counts by words."""
    with OpenAIStub(tokenizer=True) as stub:
        stub.models_reply = model_list(48)
        stub.script(*(stream(["ok"]) for _ in range(4)))
        lines = "".join(f"tell me about topic number {i} please\n" for i in range(4))
        result = run_cli(
            "chat", "-n", "4", input=lines, env={"LLMCLI_BASE_URL": stub.url}, timeout=60
        )
        assert result.returncode == 0, result.stderr.decode()
        assert "oldest exchange" in result.stderr.decode()
        last = (stub.completions()[-1].body or {})["messages"]
        assert last[-1] == {"role": "user", "content": "tell me about topic number 3 please"}
        assert {"role": "user", "content": "tell me about topic number 0 please"} not in last


def test_json_of_ask_is_one_line_of_utf8() -> None:
    from llmcli.render.json_out import write_json

    out = io.StringIO()
    write_json(out, {"text": "é"})
    assert out.getvalue() == '{"text": "é"}\n'
    assert json.loads(out.getvalue()) == {"text": "é"}


def test_environment_is_plain_in_buffers() -> None:
    env = Environment(stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO(), environ={})
    assert not env.stdout_isatty


# -- a knob added in one place reaches everything -----------------------------------------


def test_presence_penalty_is_an_option_a_setting_and_a_request_field() -> None:
    """--presence-penalty was added as one row in knobs.py and one Sampling field."""
    settings = Settings()
    assert settings.presence_penalty == 0.0 and "presence_penalty" in KEYS
    assert KEYS["presence_penalty"].env_var == "LLMCLI_PRESENCE_PENALTY"
    sampling = Sampling()
    assert apply_setting(sampling, "presence_penalty 0.5") == "presence_penalty = 0.5"
    assert sampling.knob_values("llama")["presence_penalty"] == 0.5
    with OpenAIStub() as stub:
        stub.script(stream(["ok"]), stream(["ok"]))
        flag = run_cli("ask", "--base-url", stub.url, "--presence-penalty", "1.5", "hi")
        env = run_cli("ask", "--base-url", stub.url, "hi", env={"LLMCLI_PRESENCE_PENALTY": "0.25"})
        assert flag.returncode == env.returncode == 0, (flag.stderr, env.stderr)
        bodies = [r.body or {} for r in stub.completions()]
    assert [b["presence_penalty"] for b in bodies] == [1.5, 0.25]
    refused = run_cli("ask", "--base-url", "http://127.0.0.1:9/v1", "--presence-penalty", "3", "x")
    assert refused.returncode == 2 and b"presence-penalty" in refused.stderr


def test_presence_penalty_end_to_end_on_the_local_model() -> None:
    """The same knob through the real CLI and llama.cpp: the flag and LLMCLI_PRESENCE_PENALTY
    change a repetitive answer (same seed), and the same flags give the same answer."""
    prompt = "List the numbers: 1, 2, 1, 2, 1, 2,"
    args = ("ask", "--raw", "--seed", "3", "-n", "24")

    def answer(*extra: str, env: dict[str, str] | None = None) -> str:
        result = run_cli(*args, *extra, prompt, env=env)
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout.decode()

    plain = answer()
    penalized = answer("--presence-penalty", "2")
    assert plain == answer() and penalized != plain
    assert answer(env={"LLMCLI_PRESENCE_PENALTY": "2"}) == penalized
