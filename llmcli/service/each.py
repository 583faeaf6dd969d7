"""``ask --each-line`` / ``--each-file``: one prompt mapped over many inputs, answered in order.

Each item's text is built exactly as ``ask`` combines piped stdin with the prompt
words (the item first, then the words), so ``--each-line W`` answers every line as
``printf '%s' LINE | llmcli ask W`` would. Items run ``parallel`` at a time:

* on a local model, as sequences of one llama.cpp batch
  (:class:`~llmcli.engine.batch.BatchDecoder`, continuous batching);
* on a server (``--base-url``), as that many concurrent streamed requests.

Either way the events arrive in any order; :class:`InOrder` hands them to the
output in input order: item *i* streams live as soon as every item before it is
done, later items are buffered until their turn. An item that cannot run (too long
for its share of the context, an unreadable file, a server error) is reported as
that item's failure and the batch goes on.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from llmcli.engine.base import (
    Engine,
    GenerationStats,
    Message,
    Prompt,
    Sampling,
    TokenPiece,
    encode,
)
from llmcli.engine.batch import BatchItem, ItemEvent
from llmcli.errors import (
    DataError,
    ExitStatus,
    Interrupted,
    LlmcliError,
    ServiceUnavailable,
    Terminated,
)
from llmcli.session.inputs import MAX_STDIN_BYTES, EncodingErrors, combine_prompt, decode_input

AnswerCheck = Callable[[str, GenerationStats], "LlmcliError | None"]
"""Judges a finished answer (``--schema``): the error that fails its item, or None."""

MAX_PARALLEL = 64
DEFAULT_PARALLEL = 8
MIN_SHARE = 512
"""The default ``--parallel`` leaves every sequence at least this many tokens of context."""


@dataclass(frozen=True)
class EachItem:
    """One input: its place, the text sent (item + prompt words), where it came from."""

    index: int
    text: str
    source: dict[str, Any]
    """``{"line": N, "input": LINE}`` or ``{"file": PATH}``: echoed in ``--json``."""
    error: LlmcliError | None = None
    """Set when the input could not even be read: the item fails without running."""


@dataclass
class ItemOutcome:
    """What became of one item: its pieces and stats, or why it failed."""

    item: EachItem
    pieces: list[TokenPiece] = field(default_factory=list)
    stats: GenerationStats = field(default_factory=GenerationStats)
    error: LlmcliError | None = None
    done: bool = False

    @property
    def text(self) -> str:
        return "".join(piece.text for piece in self.pieces)


class EachOutput(Protocol):
    """Where answers go, in input order (``llmcli.render.each``): plain values only."""

    def begin(self, index: int) -> None: ...

    def feed(self, text: str) -> None: ...

    def end(
        self,
        index: int,
        source: dict[str, Any],
        pieces: list[TokenPiece],
        stats: GenerationStats,
        error: LlmcliError | None,
    ) -> None: ...


class EachProgress(Protocol):
    """Told after every finished item (``llmcli.render.each.open_progress``)."""

    def update(self, done: int, total: int, tokens: int, elapsed_s: float) -> None: ...

    def close(self) -> None: ...


@dataclass
class EachRequest:
    """The options every item shares."""

    words: list[str]
    system: str | None = None
    raw: bool = False
    parallel: int | None = None
    """``None``: :func:`default_parallel`."""


# -- reading the items ------------------------------------------------------------------


def items_from_lines(text: str, words: Sequence[str]) -> list[EachItem]:
    """One item per non-blank line (blank lines are skipped; ``line`` keeps the numbering)."""
    items: list[EachItem] = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            items.append(
                EachItem(
                    len(items),
                    combine_prompt(line, list(words)),
                    {"line": number, "input": line},
                )
            )
    if not items:
        raise DataError("stdin has no lines to answer", hint="pipe in one item per line")
    return items


def items_from_files(
    paths: Sequence[Path], words: Sequence[str], *, errors: EncodingErrors
) -> list[EachItem]:
    """One item per file; a file that cannot be read is that item's failure."""
    items = []
    for index, path in enumerate(paths):
        source: dict[str, Any] = {"file": str(path)}
        try:
            text = combine_prompt(_read_file(path, errors), list(words))
        except LlmcliError as exc:
            items.append(EachItem(index, "", source, error=exc))
            continue
        items.append(EachItem(index, text, source))
    return items


def _read_file(path: Path, errors: EncodingErrors) -> str:
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_STDIN_BYTES + 1)
    except OSError as exc:
        raise DataError(
            f"cannot read {path}: {exc.strerror or exc}", hint="check the path"
        ) from None
    if len(data) > MAX_STDIN_BYTES:
        raise DataError(
            f"{path} is larger than {MAX_STDIN_BYTES // (1024 * 1024)} MiB",
            hint="split it into smaller files",
        )
    return decode_input(data, errors=errors, source=str(path))


def default_parallel(n_items: int, n_ctx: int, *, local: bool) -> int:
    """8 at once, never more than the items, and locally never a share under 512 tokens.

    On 2 cores a batch of 8 short sequences already keeps the matrix units busy
    (benchmarks/bench_batch.py); more sequences mainly shrink each one's context.
    """
    n = min(DEFAULT_PARALLEL, max(1, n_items))
    if local:
        n = min(n, max(1, n_ctx // MIN_SHARE))
    return n


# -- running them -----------------------------------------------------------------------


def _messages(request: EachRequest, text: str) -> list[Message]:
    messages = [Message("system", request.system)] if request.system else []
    messages.append(Message("user", text))
    return messages


def _prompt(request: EachRequest, text: str) -> Prompt:
    return Prompt.raw(text) if request.raw else Prompt.chat(_messages(request, text))


def _failed(index: int, error: LlmcliError) -> ItemEvent:
    stats = GenerationStats(finish_reason="error", error=error.message)
    return ItemEvent(index, stats=stats, error=error)


def local_events(
    engine: Any,
    items: Sequence[EachItem],
    request: EachRequest,
    sampling: Sampling,
    parallel: int,
    cancel: threading.Event,
) -> Generator[ItemEvent, None, None]:
    """Items as sequences of one llama.cpp batch on ``engine`` (a ``LlamaEngine``)."""
    from llmcli.engine.batch import BatchDecoder

    runnable: list[BatchItem] = []
    for item in items:
        try:
            if item.error is not None:
                raise item.error
            ids = encode(engine, _prompt(request, item.text))
            runnable.append(BatchItem(item.index, ids, sampling))
        except LlmcliError as exc:
            yield _failed(item.index, exc)
    if not runnable:
        return
    decoder = BatchDecoder(engine, parallel=parallel, n_ctx=engine.n_ctx)
    try:
        yield from decoder.run(runnable, cancel)
    finally:
        decoder.close()


def remote_events(
    engine: Engine,
    items: Sequence[EachItem],
    request: EachRequest,
    sampling: Sampling,
    parallel: int,
    cancel: threading.Event,
) -> Generator[ItemEvent, None, None]:
    """Items as ``parallel`` concurrent streamed requests to the server ``engine`` talks to."""
    todo: queue.SimpleQueue[EachItem] = queue.SimpleQueue()
    for item in items:
        todo.put(item)
    out: queue.SimpleQueue[Any] = queue.SimpleQueue()
    running: dict[int, Any] = {}
    lock = threading.Lock()

    def answer(item: EachItem) -> None:
        _answer_remotely(engine, request, sampling, item, out, running, lock, cancel)

    def worker() -> None:
        try:
            while not cancel.is_set():
                try:
                    item = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    answer(item)
                except LlmcliError as exc:  # before the first token: this item failed
                    out.put(_failed(item.index, exc))
        except BaseException as exc:  # a bug: handed to the caller's thread
            out.put(_Crash(exc))
        finally:
            out.put(_WORKER_DONE)

    workers = [
        threading.Thread(target=worker, name=f"llmcli-each-{n}", daemon=True)
        for n in range(max(1, min(parallel, len(items))))
    ]
    for thread in workers:
        thread.start()
    alive = len(workers)
    try:
        while alive:
            event = out.get()
            if event is _WORKER_DONE:
                alive -= 1
            elif isinstance(event, _Crash):
                raise event.exc
            else:
                yield event
    finally:
        cancel.set()
        with lock:
            for generation in list(running.values()):
                generation.cancel()
        for thread in workers:
            thread.join(timeout=2.0)  # a worker blocked in a read times out on its own


def _answer_remotely(
    engine: Engine,
    request: EachRequest,
    sampling: Sampling,
    item: EachItem,
    out: queue.SimpleQueue[Any],
    running: dict[int, Any],
    lock: threading.Lock,
    cancel: threading.Event,
) -> None:
    """One item's streamed request: its pieces, then its stats, onto ``out``.

    The generation is kept in ``running`` while it streams, so that Ctrl-C in the
    caller's thread can cancel every request in flight."""
    if item.error is not None:
        out.put(_failed(item.index, item.error))
        return
    generation = engine.generate(_prompt(request, item.text), sampling)
    with lock:
        running[item.index] = generation
    try:
        for piece in generation:
            out.put(ItemEvent(item.index, piece=piece))
            if cancel.is_set():
                generation.cancel()
                break
    finally:
        with lock:
            running.pop(item.index, None)
    stats = generation.stats
    if cancel.is_set() and stats.finish_reason != "error":
        stats.finish_reason = "interrupted"
    error = None
    if stats.finish_reason == "error":
        error = ServiceUnavailable(stats.error or "generation failed")
    out.put(ItemEvent(item.index, stats=stats, error=error))


_WORKER_DONE = object()


class _Crash:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


# -- in input order ----------------------------------------------------------------------


class InOrder:
    """Passes events to the output in input order, streaming the earliest unfinished item."""

    def __init__(
        self, items: Sequence[EachItem], output: EachOutput, check: AnswerCheck | None = None
    ) -> None:
        self.check = check
        self.items = list(items)
        self.outcomes = [ItemOutcome(item) for item in self.items]
        self.output = output
        self.head = 0
        if self.items:
            output.begin(0)

    def on_event(self, event: ItemEvent) -> None:
        outcome = self.outcomes[event.index]
        if event.piece is not None:
            outcome.pieces.append(event.piece)
            if event.index == self.head and event.piece.text:
                self.output.feed(event.piece.text)
        if event.stats is not None:
            outcome.stats, outcome.error, outcome.done = event.stats, event.error, True
            if outcome.error is None and self.check is not None:
                outcome.error = self.check(outcome.text, outcome.stats)
            self._advance()

    def _advance(self) -> None:
        while self.head < len(self.items) and self.outcomes[self.head].done:
            self._end(self.outcomes[self.head])
            self.head += 1
            if self.head < len(self.items):
                self.output.begin(self.head)
                buffered = self.outcomes[self.head].text
                if buffered:
                    self.output.feed(buffered)

    def stop(self) -> None:
        """After Ctrl-C: end the item being shown (interrupted); later ones are dropped."""
        if self.head < len(self.items):
            outcome = self.outcomes[self.head]
            if not outcome.done:
                outcome.stats.finish_reason = "interrupted"
            self._end(outcome)
            self.head = len(self.items)

    def _end(self, outcome: ItemOutcome) -> None:
        item = outcome.item
        self.output.end(item.index, item.source, outcome.pieces, outcome.stats, outcome.error)


@dataclass
class EachSummary:
    outcomes: list[ItemOutcome]
    stopped: str | None = None
    """``"interrupt"`` (Ctrl-C) or ``"terminate"`` (SIGTERM), else ``None``."""

    @property
    def failed(self) -> list[ItemOutcome]:
        return [o for o in self.outcomes if o.done and o.error is not None]


def run_each(
    engine: Engine,
    items: Sequence[EachItem],
    request: EachRequest,
    sampling: Sampling,
    output: EachOutput,
    progress: EachProgress | None = None,
    check: AnswerCheck | None = None,
) -> EachSummary:
    """Answer every item, ``request.parallel`` at a time, writing answers in input order."""
    local = _in_process(engine)
    parallel = request.parallel or default_parallel(len(items), engine.n_ctx, local=local)
    events: Callable[..., Generator[ItemEvent, None, None]] = (
        local_events if local else remote_events
    )
    cancel = threading.Event()
    order = InOrder(items, output, check)
    started, tokens, done = time.perf_counter(), 0, 0
    stream = events(engine, items, request, sampling, parallel, cancel)
    summary = EachSummary(order.outcomes)
    try:
        for event in stream:
            order.on_event(event)
            if event.stats is not None:
                done, tokens = done + 1, tokens + event.stats.generated_tokens
                if progress is not None:
                    progress.update(done, len(items), tokens, time.perf_counter() - started)
    except (KeyboardInterrupt, Terminated) as stop:
        summary.stopped = "terminate" if isinstance(stop, Terminated) else "interrupt"
        _stop(stream, cancel)
        order.stop()
    finally:
        _stop(stream, cancel)  # also after a broken pipe; closing twice is harmless
        if progress is not None:
            progress.close()
    return summary


def _stop(stream: Generator[ItemEvent, None, None], cancel: threading.Event) -> None:
    """Cancel every sequence and wait until the engine (or the workers) stopped."""
    cancel.set()
    with contextlib.suppress(BaseException):  # a second Ctrl-C while waiting: exit anyway
        stream.close()


def _in_process(engine: Engine) -> bool:
    """A model loaded in this process (the batch needs its native handles), not a server."""
    if engine.token_level() is None:
        return False
    from llmcli.engine.llama import LlamaEngine

    return isinstance(engine, LlamaEngine)


class EachFailed(LlmcliError):
    """Some items failed; the exit status is that of the first failure in input order."""

    def __init__(self, message: str, status: ExitStatus, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.status = status


def raise_for_each(summary: EachSummary) -> None:
    """Exit 130/143 after Ctrl-C/SIGTERM; else the first failed item's status (65, 69…)."""
    if summary.stopped == "terminate":
        raise Terminated("terminated")
    if summary.stopped == "interrupt":
        raise Interrupted("interrupted")
    failed = summary.failed
    if failed:
        first = failed[0]
        error = first.error
        assert error is not None
        raise EachFailed(
            f"{len(failed)} of {len(summary.outcomes)} items failed; the first, "
            f"item {first.item.index + 1}: {error.message}",
            error.status,
            error.hint,
        )
