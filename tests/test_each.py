"""``ask --each-line`` / ``--each-file``: many prompts at once, answers in input order.

The real CLI in a subprocess with the real SmolLM2 model (greedy, few tokens), the
batch engine in-process against one-by-one generation, and the remote path against
the stub server, which counts the requests it is answering at once.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmcli.engine.base import GenerationStats, LoadOptions, Message, Sampling, TokenPiece
from llmcli.engine.batch import BatchItem, ItemEvent
from llmcli.service.each import EachItem, InOrder, default_parallel, items_from_lines
from llmcli.session.inputs import combine_prompt
from tests.conftest import run_cli
from tests.openai_stub import OpenAIStub, echo_when_concurrent, status, stream

LINES = ["I love this movie", "The food was cold", "What is 2+2?", "Name a colour"]
PROMPT = "Classify the sentiment:"


def each(*args: str, input: str | None = None, timeout: float = 600):
    return run_cli("ask", "--each-line", *args, input=input, timeout=timeout)


def records(stdout: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.decode().splitlines()]


# -- in input order, without a model ------------------------------------------------------


class _Output:
    def __init__(self) -> None:
        self.log: list[str] = []

    def begin(self, index: int) -> None:
        self.log.append(f"<{index}>")

    def feed(self, text: str) -> None:
        self.log.append(text)

    def end(self, index: int, source: object, pieces: object, stats: object, error: object):
        self.log.append(f"</{index}>")


def _piece(index: int, text: str) -> ItemEvent:
    return ItemEvent(index, piece=TokenPiece(text=text, token_id=1))


def _done(index: int) -> ItemEvent:
    return ItemEvent(index, stats=GenerationStats())


def test_in_order_streams_the_first_unfinished_item_and_buffers_the_rest() -> None:
    items = [EachItem(i, f"t{i}", {}) for i in range(3)]
    output = _Output()
    order = InOrder(items, output)
    for event in [
        _piece(2, "c"),
        _piece(0, "a"),
        _piece(1, "b"),
        _done(2),
        _piece(0, "A"),
        _done(0),
        _piece(1, "B"),
        _done(1),
    ]:
        order.on_event(event)
    assert output.log == ["<0>", "a", "A", "</0>", "<1>", "b", "B", "</1>", "<2>", "c", "</2>"]


def test_lines_become_items_like_piped_stdin_and_skip_blank_lines() -> None:
    items = items_from_lines("one\n\n  \ntwo\n", ["Say:"])
    assert [(i.index, i.text, i.source) for i in items] == [
        (0, "one\nSay:", {"line": 1, "input": "one"}),
        (1, "two\nSay:", {"line": 4, "input": "two"}),
    ]


def test_progress_bar_on_stderr_only_when_it_is_a_terminal_and_stdout_is_not() -> None:
    from llmcli.context import Environment
    from llmcli.render.each import open_progress

    def env(stdout_tty: bool, stderr_tty: bool) -> Environment:
        return Environment(
            stdin=io.StringIO(),
            stdout=io.StringIO(),
            stderr=io.StringIO(),
            stdin_isatty=False,
            stdout_isatty=stdout_tty,
            stderr_isatty=stderr_tty,
            environ={},
        )

    assert open_progress(env(True, True), 4) is None
    assert open_progress(env(False, False), 4) is None
    shown = env(False, True)
    bar = open_progress(shown, 4)
    assert bar is not None
    bar.update(2, 4, 150, 1.5)
    bar.close()
    drawn = shown.stderr.getvalue()  # type: ignore[attr-defined]
    assert "2/4" in drawn and "100.0 tok/s" in drawn
    assert shown.stdout.getvalue() == ""  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("items", "n_ctx", "local", "expected"),
    [(32, 4096, True, 8), (3, 4096, True, 3), (32, 1024, True, 2), (32, 1024, False, 8)],
)
def test_default_parallel(items: int, n_ctx: int, local: bool, expected: int) -> None:
    assert default_parallel(items, n_ctx, local=local) == expected


@pytest.mark.parametrize(
    "args",
    [
        ["--parallel", "2", "hi"],
        ["--null", "hi"],
        ["--each-line", "--each-file", "x.txt", "hi"],
        ["--each-line", "--null", "--json", "hi"],
        ["--each-line", "--continue", "hi"],
        ["--each-line", "--schema", "age integr", "hi"],
    ],
)
def test_meaningless_combinations_are_usage_errors(args: list[str]) -> None:
    result = run_cli("ask", *args, input="a\n")
    assert result.returncode == 2, result.stderr
    assert b"Traceback" not in result.stderr


# -- the batch engine against one-by-one generation -------------------------------------


@pytest.fixture(scope="module")
def engine(model_path: Path) -> Iterator[object]:
    from llmcli.engine.llama import LlamaEngine

    loaded = LlamaEngine(model_path, LoadOptions(n_ctx=1024))
    yield loaded
    loaded.close()


def test_batched_greedy_answers_equal_one_by_one(engine) -> None:  # type: ignore[no-untyped-def]
    from llmcli.engine.batch import BatchDecoder

    sampling = Sampling(greedy=True, max_tokens=24)
    prompts = [engine.chat_prompt([Message("user", line)]) for line in LINES + ["Hi", "Why?"]]
    alone = [engine.generate(p, sampling).text() for p in prompts]
    decoder = BatchDecoder(engine, parallel=3, n_ctx=1024)  # 6 items through 3 slots
    texts = ["" for _ in prompts]
    ended = []
    try:
        batch = [BatchItem(i, p, sampling) for i, p in enumerate(prompts)]
        for event in decoder.run(batch, threading.Event()):
            if event.piece is not None:
                texts[event.index] += event.piece.text
            if event.finished:
                ended.append(event.index)
    finally:
        decoder.close()
    assert texts == alone
    assert sorted(ended) == list(range(len(prompts)))


def _batched(
    engine, prompts: list[list[int]], sampling: Sampling, parallel: int
) -> list[list[TokenPiece]]:  # type: ignore[no-untyped-def]
    from llmcli.engine.batch import BatchDecoder

    decoder = BatchDecoder(engine, parallel=parallel, n_ctx=1024)
    pieces: list[list[TokenPiece]] = [[] for _ in prompts]
    try:
        batch = [BatchItem(i, p, sampling) for i, p in enumerate(prompts)]
        for event in decoder.run(batch, threading.Event()):
            if event.piece is not None and event.piece.token_id >= 0:
                pieces[event.index].append(event.piece)
    finally:
        decoder.close()
    return pieces


def test_prompts_of_different_lengths_get_the_logits_they_get_alone(engine) -> None:  # type: ignore[no-untyped-def]
    """Admitted together, a prompt one token longer than another must not be cut in two.

    llama.cpp splits a batch of several sequences into equal-length pieces per
    sequence, so the longer prompt's last token would be evaluated on its own, by
    another attention kernel, and its logits (hence greedy answers) would differ from
    the answer alone: 2 of the 32 benchmark items did. Compared to the last bit.
    """
    question = "Classify the sentiment as positive or negative, and say why:"
    lines = [
        "I love this phone, the battery lasts for days.",
        "The delivery was late and the box was crushed.",
    ]
    texts = [combine_prompt(line, [question]) for line in lines]  # as --each-line builds them
    prompts = [engine.chat_prompt([Message("user", text)]) for text in texts]
    assert len(prompts[0]) == len(prompts[1]) + 1  # the case that went wrong
    sampling = Sampling(greedy=True, max_tokens=4, logprobs=3)
    alone = [list(engine.generate(p, sampling)) for p in prompts]
    together = _batched(engine, prompts, sampling, parallel=2)
    assert [[(p.token_id, p.top) for p in item] for item in together] == [
        [(p.token_id, p.top) for p in item] for item in alone
    ]


def test_sampled_answers_with_one_seed_equal_one_by_one(engine) -> None:  # type: ignore[no-untyped-def]
    from llmcli.engine.batch import BatchDecoder

    sampling = Sampling(temperature=1.0, seed=7, max_tokens=16)
    prompts = [engine.chat_prompt([Message("user", line)]) for line in LINES[:3]]
    alone = [engine.generate(p, sampling).text() for p in prompts]
    decoder = BatchDecoder(engine, parallel=3, n_ctx=1024)
    texts = ["", "", ""]
    try:
        for event in decoder.run(
            [BatchItem(i, p, sampling) for i, p in enumerate(prompts)], threading.Event()
        ):
            if event.piece is not None:
                texts[event.index] += event.piece.text
    finally:
        decoder.close()
    assert texts == alone


# -- the real CLI -----------------------------------------------------------------------


def test_answers_come_in_input_order_and_equal_ask_one_by_one() -> None:
    result = each(
        "--greedy", "-n", "16", "--parallel", "3", "--json", PROMPT, input="\n".join(LINES)
    )
    assert result.returncode == 0, result.stderr
    got = records(result.stdout)
    assert [(r["index"], r["input"]) for r in got] == list(enumerate(LINES))
    for record, line in zip(got, LINES, strict=True):
        alone = run_cli("ask", "--greedy", "-n", "16", "--json", PROMPT, input=line)
        assert record["text"] == json.loads(alone.stdout)["text"], line


def test_plain_answers_are_separated_by_a_blank_line_and_null_by_nul() -> None:
    lines = "Say yes\nSay no\n"
    plain = each("--greedy", "-n", "6", input=lines)
    nul = each("--greedy", "-n", "6", "--null", input=lines)
    assert plain.returncode == nul.returncode == 0, plain.stderr + nul.stderr
    answers = nul.stdout.decode().split("\0")
    assert answers[-1] == "" and len(answers) == 3
    expected = "\n".join(a if a.endswith("\n") else a + "\n" for a in answers[:2])
    assert plain.stdout.decode() == expected


def test_an_item_too_long_for_its_share_fails_alone() -> None:
    long_line = " ".join(["word"] * 400)  # > 256 tokens: the share of 512 / 2
    result = each(
        "--ctx",
        "512",
        "--parallel",
        "2",
        "--greedy",
        "-n",
        "4",
        "--json",
        "Say hi",
        input=f"first\n{long_line}\nthird\n",
    )
    assert result.returncode == 65, result.stderr
    first, failed, third = records(result.stdout)
    assert first["text"] and third["text"]
    assert failed["finish_reason"] == "error" and failed["text"] == ""
    assert "256" in str(failed["error"])
    err = result.stderr.decode()
    assert "item 2 (line 2)" in err and "1 of 3 items failed" in err
    assert "Traceback" not in err


def test_each_file_answers_every_file_and_an_unreadable_one_fails(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("Say yes")
    b.write_text("Say no")
    missing = tmp_path / "missing.txt"
    result = run_cli(
        "ask",
        "--greedy",
        "-n",
        "4",
        "--json",
        "--each-file",
        str(a),
        "--each-file",
        str(missing),
        "--each-file",
        str(b),
    )
    assert result.returncode == 65, result.stderr
    got = records(result.stdout)
    assert [r["file"] for r in got] == [str(a), str(missing), str(b)]
    assert got[0]["text"] and got[2]["text"] and "cannot read" in str(got[1]["error"])


def test_ctrl_c_stops_every_sequence_keeps_what_was_printed_and_exits_130(
    tmp_path: Path,
) -> None:
    lines = tmp_path / "lines.txt"
    lines.write_text("a dragon\na knight\na ship\na storm\n")
    with lines.open("rb") as stdin:
        proc = subprocess.Popen(
            [
                *[sys.executable, "-m", "llmcli", "ask", "--each-line", "-n", "400"],
                *["-t", "1.0", "Write a very long story about this:"],
            ],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        first = proc.stdout.read(1)  # the first item is streaming
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert (first + rest).strip()
    assert (first + rest).endswith(b"\n")  # the item being printed was ended
    assert b"Traceback" not in err


# -- a server -----------------------------------------------------------------------------


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub() as server:
        yield server


def test_remote_items_are_concurrent_requests_answered_in_order(stub: OpenAIStub) -> None:
    stub.script(*(echo_when_concurrent(4) for _ in range(4)))
    result = run_cli(
        "ask",
        "--base-url",
        stub.url,
        "--each-line",
        "--parallel",
        "4",
        "--json",
        "Echo:",
        input="\n".join(LINES),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert stub.max_in_flight == 4
    got = records(result.stdout)
    assert [r["text"] for r in got] == [f"echo: {line}\nEcho:" for line in LINES]


def test_remote_failing_item_in_the_middle(stub: OpenAIStub) -> None:
    stub.script(stream(["one"]), status(400, "prompt too long"), stream(["three"]))
    result = run_cli(
        "ask",
        "--base-url",
        stub.url,
        "--each-line",
        "--parallel",
        "1",
        "x",
        input="a\nb\nc\n",
        timeout=60,
    )
    assert result.returncode == 65, result.stderr
    assert result.stdout.decode() == "one\n\n\n\nthree\n"
    assert "item 2 (line 2)" in result.stderr.decode()
    assert stub.max_in_flight == 1
