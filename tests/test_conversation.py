"""Conversations, append-only prompts, context trimming, and the REPL logic (fake engine).

The fake engine tokenizes UTF-8 bytes; ``MergingEngine`` also merges "ll" into one
token, so tokenizing a whole text differs from the ids a model may have sampled —
the situation the prompt log exists for.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from llmcli.context import Environment
from llmcli.engine.base import Generation, GenerationStats, Message, Sampling, TokenPiece
from llmcli.engine.fake import FakeEngine
from llmcli.errors import DataError, LlmcliError, UsageError
from llmcli.repl.commands import (
    SlashCompleter,
    apply_setting,
    parse_slash,
    unescape_message,
)
from llmcli.repl.inputs import LineReader
from llmcli.repl.keys import in_open_block, unwrap_block
from llmcli.repl.loop import ChatOutput, ChatRepl
from llmcli.session.conversation import (
    ChatEngine,
    Conversation,
    PromptLog,
    answer_reserve,
    check_overflow_policy,
    fit_prompt,
)
from llmcli.session.history import HistoryStore
from llmcli.session.transcript import load_transcript, save_transcript
from llmcli.session.turns import ChatSession

LL = 300  # the merged "ll" token


class MergingEngine(FakeEngine):
    """Byte tokens, except that "ll" is one token when a whole text is tokenized."""

    def tokenize(self, text: str, *, add_bos: bool = True, special: bool = False) -> list[int]:
        out: list[int] = []
        data = text.encode()
        i = 0
        while i < len(data):
            if data[i : i + 2] == b"ll":
                out.append(LL)
                i += 2
            else:
                out.append(data[i])
                i += 1
        return out

    def detokenize(self, ids: Sequence[int], *, special: bool = False) -> str:
        return b"".join(b"ll" if i == LL else bytes([i]) for i in ids).decode()


class ByteReplyEngine(FakeEngine):
    """Replies as single-byte tokens with real ids (like a model that never merges)."""

    def generate(self, prompt: Sequence[int], sampling: Sampling) -> Generation:
        self.history.append(list(prompt))
        reply = self._replies.popleft() if self._replies else ""
        stats = GenerationStats(prompt_tokens=len(prompt))
        limit = sampling.max_tokens or len(reply)

        def pieces() -> Iterator[TokenPiece]:
            for byte in reply.encode()[:limit]:
                stats.generated_tokens += 1
                yield TokenPiece(bytes([byte]).decode(), byte)

        return Generation(pieces=pieces(), stats=stats)


class MergingByteEngine(MergingEngine, ByteReplyEngine):
    pass


class InterruptingEngine(FakeEngine):
    """Raises KeyboardInterrupt (as Ctrl-C would) after ``after`` pieces of the next reply."""

    def __init__(self, after: int, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.after = after
        self.closed_generators = 0

    def generate(self, prompt: Sequence[int], sampling: Sampling) -> Generation:
        generation = super().generate(prompt, sampling)
        inner = generation.pieces
        after, self.after = self.after, 0
        engine = self

        def pieces() -> Iterator[TokenPiece]:
            try:
                for n, piece in enumerate(inner):
                    if after and n == after:
                        raise KeyboardInterrupt
                    yield piece
            finally:
                engine.closed_generators += 1

        generation.pieces = pieces()
        return generation


# -- conversation ------------------------------------------------------------------------


def _conv(*pairs: tuple[str, str], system: str | None = None) -> Conversation:
    conversation = Conversation(system=system)
    for user, answer in pairs:
        conversation.add("user", user)
        conversation.add("assistant", answer)
    return conversation


def test_in_context_puts_the_system_prompt_first_and_follows_the_window() -> None:
    conversation = _conv(("a", "1"), ("b", "2"), system="S")
    assert conversation.in_context()[0] == Message("system", "S")
    assert conversation.drop_oldest_exchange()
    assert [m.content for m in conversation.in_context()] == ["S", "b", "2"]
    assert conversation.dropped_exchanges() == 1
    assert not conversation.drop_oldest_exchange()  # the newest exchange always stays


def test_drop_oldest_skips_an_unanswered_message() -> None:
    conversation = Conversation()
    conversation.add("user", "lost")  # e.g. the answer crashed
    conversation.add("user", "again")
    conversation.add("assistant", "ok")
    conversation.add("user", "next")
    assert conversation.drop_oldest_exchange()
    assert [m.content for m in conversation.in_context()] == ["again", "ok", "next"]


def test_title_is_the_first_user_message_on_one_line() -> None:
    assert _conv(("hello\n  world", "x")).title == "hello world"
    assert _conv(("x" * 100, "y")).title.endswith("…")


# -- the prompt log: append-only prompts ---------------------------------------------------


def test_next_prompt_extends_the_sampled_ids_not_a_retokenization() -> None:
    engine = MergingEngine()
    log = PromptLog()
    messages = [Message("user", "hi")]
    text, ids = log.tokens(engine, messages)
    log.remember(text, ids)
    answer_ids = list(b"hello")  # the model sampled "l", "l": not the merged token
    log.remember_answer(engine, (text, ids), "hello", answer_ids)

    messages += [Message("assistant", "hello"), Message("user", "more")]
    _, next_ids = log.tokens(engine, messages)
    assert next_ids[: len(ids) + len(answer_ids)] == ids + answer_ids
    # re-tokenizing the whole conversation would have broken the prefix
    assert engine.chat_prompt(messages)[: len(ids) + len(answer_ids)] != ids + answer_ids


def test_answer_ids_that_do_not_spell_the_answer_are_not_reused() -> None:
    engine = MergingEngine()
    log = PromptLog()
    text, ids = log.tokens(engine, [Message("user", "hi")])
    log.remember(text, ids)
    log.remember_answer(engine, (text, ids), "hello", list(b"hello STOP"))  # stop text cut
    messages = [Message("user", "hi"), Message("assistant", "hello"), Message("user", "x")]
    _, next_ids = log.tokens(engine, messages)
    assert next_ids[: len(ids)] == ids
    assert next_ids == ids + engine.tokenize(engine.render_chat(messages)[len(text) :])


def test_retry_reuses_the_prompt_before_the_answer() -> None:
    engine = MergingEngine()
    session = ChatSession(engine, model_name="fake")
    turn = session.begin_turn("hello", max_tokens=10)
    session.finish_turn(turn, _pieces("a ll b"), GenerationStats(), interrupted=False)
    again = session.retry_turn(max_tokens=10)
    assert again.prompt.ids == turn.prompt.ids
    assert [m.role for m in session.conversation.messages] == ["user"]


def _pieces(text: str) -> list[TokenPiece]:
    return [TokenPiece(bytes([b]).decode(), b) for b in text.encode()]


# -- fitting the context ---------------------------------------------------------------------


def test_fit_drops_oldest_exchanges_and_keeps_the_system_prompt() -> None:
    engine = FakeEngine(n_ctx=400)
    conversation = _conv(
        *[(f"question {i} " * 5, f"answer {i} " * 5) for i in range(6)], system="SYS"
    )
    conversation.add("user", "last question")
    prompt = fit_prompt(engine, conversation, PromptLog(), reserve=50)
    assert prompt.dropped > 0
    assert len(prompt.ids) + 50 <= engine.n_ctx
    assert prompt.text.startswith("<|im_start|>system\nSYS")
    assert "question 0" not in prompt.text
    assert "last question" in prompt.text
    # the whole conversation is still there, only the window moved
    assert len(conversation.messages) == 13


def test_fit_with_error_policy_refuses_instead_of_dropping() -> None:
    engine = FakeEngine(n_ctx=200)
    conversation = _conv(("q" * 100, "a" * 100))
    conversation.add("user", "next")
    with pytest.raises(DataError, match="does not fit"):
        fit_prompt(engine, conversation, PromptLog(), reserve=10, policy="error")
    assert conversation.window_start == 0


def test_a_message_too_long_for_the_context_is_refused_and_not_kept() -> None:
    session = ChatSession(FakeEngine(n_ctx=100), model_name="fake")
    with pytest.raises(DataError, match="your message does not fit"):
        session.begin_turn("x" * 200, max_tokens=10)
    assert session.conversation.messages == []


def test_answer_reserve_is_bounded_by_half_the_context() -> None:
    assert answer_reserve(256, None) == 64
    assert answer_reserve(256, 1000) == 128
    assert answer_reserve(4096, 100) == 100


def test_overflow_policy_names() -> None:
    assert check_overflow_policy("error") == "error"
    with pytest.raises(UsageError):
        check_overflow_policy("truncate")


def test_both_engines_satisfy_the_chat_protocol() -> None:
    assert isinstance(FakeEngine(), ChatEngine)


# -- the session saves as it goes --------------------------------------------------------------


def test_session_saves_each_message_and_edits(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "c.db")
    engine = FakeEngine()
    session = ChatSession(engine, model_name="fake", store=store)
    session.set_system("be brief")
    for text in ("one", "two"):
        turn = session.begin_turn(text, max_tokens=5)
        session.finish_turn(turn, _pieces(f"re {text}"), GenerationStats(), interrupted=False)
    conv_id = session.conversation.id
    assert conv_id is not None
    saved = store.load(conv_id)
    assert saved.system == "be brief"
    assert [m.content for m in saved.messages] == ["one", "re one", "two", "re two"]

    session.undo()
    assert [m.content for m in store.load(conv_id).messages] == ["one", "re one"]
    turn = session.retry_turn(max_tokens=5)
    assert [m.content for m in store.load(conv_id).messages] == ["one"]
    session.finish_turn(turn, _pieces("partial"), GenerationStats(), interrupted=True)
    last = store.load(conv_id).messages[-1]
    assert (last.content, last.interrupted) == ("partial", True)

    session.clear()
    assert session.conversation.id is None and session.conversation.system == "be brief"
    assert len(store.conversations()) == 1  # an empty conversation is not saved


# -- slash commands, keys, readers --------------------------------------------------------------


def test_parse_slash_and_escape() -> None:
    assert parse_slash("/set top_k 5") == ("set", "top_k 5")
    assert parse_slash("  /EXIT ") == ("exit", "")
    assert parse_slash("hello /x") is None
    assert parse_slash("//etc is a folder") is None
    assert unescape_message("//etc is a folder") == "/etc is a folder"


def test_set_checks_values_and_temperature_leaves_greedy() -> None:
    sampling = Sampling(greedy=True)
    assert apply_setting(sampling, "top_k 5") == "top_k = 5"
    assert apply_setting(sampling, "max_tokens none") == "max_tokens = none"
    assert sampling.max_tokens is None
    apply_setting(sampling, "temperature 0.3")
    assert sampling.temperature == 0.3 and not sampling.greedy
    for bad in ("top_p 2", "top_k -1", "temperature nan", "colour red", ""):
        with pytest.raises(UsageError):
            apply_setting(sampling, bad)


def test_completion_of_commands_and_settings() -> None:
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    def complete(text: str) -> list[str]:
        completer = SlashCompleter()
        return [c.text for c in completer.get_completions(Document(text), CompleteEvent())]

    assert complete("/se") == ["/set"]
    assert set(complete("/s")) == {"/save", "/schema", "/set", "/stats", "/system"}
    assert complete("/set te") == ["temperature"]
    assert complete("hello") == []


def test_triple_quote_blocks() -> None:
    assert in_open_block('"""first line')
    assert not in_open_block('"""a\nb"""')
    assert not in_open_block("plain")
    assert unwrap_block('"""\nline 1\nline 2\n"""') == "line 1\nline 2"
    assert unwrap_block("plain") == "plain"


def test_line_reader_reads_messages_and_blocks() -> None:
    reader = LineReader(io.StringIO('one\n\n"""\na\nb\n"""\ntwo\n"""\nunclosed\n'))
    assert [reader.read() for _ in range(4)] == ["one", "a\nb", "two", "unclosed"]
    with pytest.raises(EOFError):
        reader.read()


# -- the REPL loop with a fake engine ------------------------------------------------------------


class ScriptReader:
    """Returns scripted inputs; an exception instance in the script is raised instead."""

    def __init__(self, *items: str | BaseException) -> None:
        self.items = list(items)

    def read(self) -> str:
        if not self.items:
            raise EOFError
        item = self.items.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


def _repl(
    engine: FakeEngine,
    *inputs: str | BaseException,
    tmp_path: Path | None = None,
    sampling: Sampling | None = None,
) -> tuple[ChatRepl, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    env = Environment(stdin=io.StringIO(), stdout=out, stderr=err, environ={})
    store = HistoryStore(tmp_path / "c.db") if tmp_path else None
    session = ChatSession(engine, model_name="fake", store=store)
    reader = ScriptReader(*inputs)
    repl = ChatRepl(session, sampling or Sampling(), ChatOutput(env, quiet=True), reader)
    return repl, out, err


def test_repl_two_turns_send_the_whole_conversation() -> None:
    engine = FakeEngine()
    engine.enqueue("Hello Bob.", "You are Bob.")
    repl, out, _ = _repl(engine, "I am Bob", "Who am I?")
    assert repl.run() == 0
    assert out.getvalue() == "Hello Bob.\nYou are Bob.\n"
    last_prompt = bytes(engine.history[-1]).decode()
    assert "I am Bob" in last_prompt and "Hello Bob." in last_prompt


def test_repl_ctrl_c_keeps_the_partial_answer_and_goes_on(tmp_path: Path) -> None:
    engine = InterruptingEngine(after=2, piece_size=2)
    engine.enqueue("abcdefgh", "fine")
    repl, out, err = _repl(engine, "long please", "and now?", tmp_path=tmp_path)
    assert repl.run() == 0
    assert "interrupted" in err.getvalue()
    messages = repl.session.conversation.messages
    assert (messages[1].content, messages[1].interrupted) == ("abcd", True)
    assert messages[3].content == "fine"
    assert engine.closed_generators == 2
    assert "abcd" in bytes(engine.history[-1]).decode()  # the partial answer is context
    conv_id = repl.session.conversation.id
    assert conv_id is not None
    assert HistoryStore(tmp_path / "c.db").load(conv_id).messages[1].interrupted


def test_repl_ctrl_c_at_the_prompt_and_exit_commands() -> None:
    engine = FakeEngine()
    engine.enqueue("answer")
    repl, out, _ = _repl(engine, KeyboardInterrupt(), "hi", "/bye", "never read")
    assert repl.run() == 0
    assert out.getvalue() == "answer\n"
    assert repl.reader.items == ["never read"]  # type: ignore[attr-defined]


def test_repl_commands(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.enqueue("one", "two", "two again")
    transcript = tmp_path / "t.json"
    repl, out, err = _repl(
        engine,
        "/system Be terse.",
        "/set max_tokens 7",
        "first",
        "second",
        "/retry",
        f"/save {transcript}",
        "/undo",
        "/tokens",
        "/nonsense",
        f"/load {transcript}",
        "/system",
        tmp_path=tmp_path,
    )
    assert repl.run() == int(UsageError.status)  # /nonsense was the last error
    assert repl.sampling.max_tokens == 7
    data = json.loads(transcript.read_text())
    assert data["system"] == "Be terse."
    assert [m["content"] for m in data["messages"]] == ["first", "one", "second", "two again"]
    assert "context used:" in out.getvalue()
    assert "unknown command /nonsense" in err.getvalue()
    # /load continued the saved transcript, not the undone state
    assert [m.content for m in repl.session.conversation.messages][-1] == "two again"
    assert out.getvalue().rstrip().endswith("Be terse.")
    assert len(HistoryStore(tmp_path / "c.db").conversations()) == 2


def test_repl_reports_a_message_that_cannot_fit_and_continues() -> None:
    engine = FakeEngine(n_ctx=100)
    engine.enqueue("ok")
    # An answer of up to 10 tokens: the default cap (512) would keep half of this tiny window.
    repl, out, err = _repl(engine, "x" * 300, "short", sampling=Sampling(max_tokens=10))
    assert repl.run() == int(DataError.status)
    assert "does not fit" in err.getvalue()
    assert out.getvalue() == "ok\n"


def test_repl_trims_old_exchanges_and_says_so() -> None:
    engine = FakeEngine(n_ctx=256)
    engine.enqueue(*["an answer of some length " * 2] * 8)
    repl, _, err = _repl(engine, *[f"message number {i} " * 3 for i in range(8)])
    repl.output.quiet = False
    assert repl.run() == 0
    assert "oldest exchange" in err.getvalue()
    assert all(len(p) <= 256 for p in engine.history)
    assert repl.session.conversation.window_start > 0


def test_model_switch_keeps_the_conversation_and_closes_the_old_engine() -> None:
    class Closing(FakeEngine):
        closed = False

        def close(self) -> None:
            self.closed = True

    old, new = Closing(), FakeEngine(model_name="new")
    old.enqueue("first answer")
    new.enqueue("second answer")
    repl, out, err = _repl(old, "hello", "/model other.gguf", "and now?")
    repl.load_model = lambda ref: (new, f"loaded {ref}")
    assert repl.run() == 0
    assert old.closed and repl.session.engine is new
    assert repl.session.model_name == "loaded other.gguf"
    assert "first answer" in bytes(new.history[0]).decode()  # the conversation went along
    assert out.getvalue() == "first answer\nsecond answer\n"


def test_model_switch_without_a_loader_is_an_error() -> None:
    repl, _, err = _repl(FakeEngine(), "/model other")
    repl.run()
    assert "not available" in err.getvalue()


def test_append_only_turns_with_real_ids() -> None:
    """Each prompt starts with the previous prompt and answer ids, turn after turn."""
    engine = MergingByteEngine()
    engine.enqueue(*[f"reply {i} all well" for i in range(5)])
    repl, _, _ = _repl(engine, *[f"say hello {i}" for i in range(5)])
    repl.run()
    replies = [list(f"reply {i} all well".encode()) for i in range(5)]
    for i in range(1, 5):
        previous = engine.history[i - 1] + replies[i - 1]
        assert engine.history[i][: len(previous)] == previous


# -- transcripts ----------------------------------------------------------------------------


def test_transcript_round_trips(tmp_path: Path) -> None:
    conversation = _conv(("q1", "## User\n\nnot a heading of ours"), ("q2", "a2"), system="sys")
    conversation.messages[-1].interrupted = True
    for name in ("t.json", "t.md"):
        path = save_transcript(conversation, tmp_path / name, model="m")
        loaded = load_transcript(path)
        assert loaded.system == "sys"
        assert [(m.role, m.content, m.interrupted) for m in loaded.messages] == [
            (m.role, m.content, m.interrupted) for m in conversation.messages
        ]


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("bad.json", "{", "not valid JSON"),
        ("bad.json", '{"messages": [{"role": "robot", "content": "x"}]}', "needs a role"),
        ("bad.md", "# just notes\n", "no llmcli message markers"),
        ("empty.json", '{"messages": []}', "no messages"),
    ],
)
def test_bad_transcripts_are_refused(tmp_path: Path, name: str, content: str, error: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(LlmcliError, match=error):
        load_transcript(path)


def test_missing_transcript(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        load_transcript(tmp_path / "nope.json")
