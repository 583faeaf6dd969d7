"""Many prompts at once: continuous batching of independent sequences on one llama.cpp context.

One context is created with ``n_seq_max = parallel`` and a KV cache that is *not*
unified: llama.cpp then gives every sequence its own stream of ``n_ctx / parallel``
cells (``llama_n_ctx_seq``), so an item can never take another's room and an item
too long for its share fails alone while the others go on.

Every round decodes one ``llama_batch`` of the last sampled token of each sequence
that is generating; each sequence then samples from its own row of logits with its
own sampler chain (its own seed, :mod:`llmcli.engine.batch_sampler`). Newly admitted
items have their prompts evaluated in the same round, each in its own ``llama_decode``
and in chunks of the engine's ``n_batch``, exactly as the engine evaluates a prompt
alone: that is what keeps greedy answers identical to one-by-one answers (see
:meth:`BatchDecoder._step`). A sequence that ends frees its slot and KV stream, and
the next item is admitted at once: continuous batching, as in llama-server.

The facts the single-sequence engine rests on hold here too: all evaluation runs on
the engine's one long-lived decode thread; token bytes come from the growing-buffer
piece function and an incremental UTF-8 decoder per sequence; the abort callback is
installed while prompt tokens are evaluated, so Ctrl-C ends a long prompt at once.
"""

from __future__ import annotations

import codecs
import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmcli.engine.base import CTX_GRANULE, GenerationStats, Sampling, TokenPiece
from llmcli.engine.batch_sampler import sampler_chain
from llmcli.engine.llama_support import N_BATCH
from llmcli.engine.stops import StopMatcher
from llmcli.errors import DataError, LlmcliError

_DONE = object()


@dataclass(frozen=True)
class BatchItem:
    """One prompt to answer; ``index`` is its place in the input."""

    index: int
    prompt: list[int]
    sampling: Sampling


@dataclass
class ItemEvent:
    """What the batch reports: a piece of item ``index``'s answer, or its end.

    ``stats`` is set on the item's last event; ``error`` says why an item failed
    (too long for its share of the context), in which case it produced nothing.
    """

    index: int
    piece: TokenPiece | None = None
    stats: GenerationStats | None = None
    error: LlmcliError | None = None

    @property
    def finished(self) -> bool:
        return self.stats is not None


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def sequence_share(n_ctx: int, parallel: int) -> int:
    """Each sequence's context: an equal share, a multiple of 256 (llama.cpp pads to it)."""
    return max(CTX_GRANULE, n_ctx // parallel // CTX_GRANULE * CTX_GRANULE)


@dataclass
class _Slot:
    """A sequence being answered: its KV stream ``seq_id`` and its own sampling state."""

    seq_id: int
    item: BatchItem
    sampler: Any
    max_new: int
    stats: GenerationStats
    started: float
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    stops: StopMatcher = field(default_factory=lambda: StopMatcher(()))
    fed: int = 0
    """Prompt tokens already in the batch; generation starts when all are."""
    n_past: int = 0
    next_token: int = -1
    row: int = -1
    """This step's batch index whose logits belong to this sequence (-1: none)."""

    @property
    def prompting(self) -> bool:
        return self.fed < len(self.item.prompt)


class BatchDecoder:
    """Decodes up to ``parallel`` sequences at once on one context of ``engine``'s model.

    ``engine`` is a loaded :class:`~llmcli.engine.llama.LlamaEngine`: its tokenizer,
    LoRA adapters and decode thread are shared, its own context is left alone.
    """

    def __init__(self, engine: Any, *, parallel: int, n_ctx: int) -> None:
        self._engine = engine
        self._lib = engine._lib
        self.parallel = max(1, parallel)
        self.n_ctx_seq = sequence_share(n_ctx, self.parallel)
        self._abort = threading.Event()
        self._abort_cb = self._lib.ggml_abort_callback(lambda _data: self._abort.is_set())
        self._no_abort_cb = self._lib.ggml_abort_callback()
        self._chunk = min(N_BATCH, engine.n_ctx)
        """Prompt tokens per ``llama_decode``: the engine's own ``n_batch``."""
        self._ctx: Any = None
        self._batch: Any = None
        self._engine._decoder.call(self._create)

    # -- setup ------------------------------------------------------------------

    def _create(self) -> None:
        lib, llama = self._lib, self._engine._llama
        params = lib.llama_context_default_params()
        params.n_ctx = self.n_ctx_seq * self.parallel
        params.n_batch = params.n_ubatch = max(self._chunk, self.parallel)
        params.n_seq_max = self.parallel
        params.n_threads = self._engine.threads
        params.n_threads_batch = self._engine.threads
        params.kv_unified = False
        params.flash_attn_type = llama.context_params.flash_attn_type
        params.no_perf = True
        ctx = lib.llama_init_from_model(llama._model.model, params)
        if ctx is None:
            raise DataError(
                f"llama.cpp could not create a context of {params.n_ctx} tokens "
                f"for {self.parallel} sequences",
                hint="lower --parallel or --ctx",
            )
        self._ctx = ctx
        self.n_ctx_seq = int(lib.llama_n_ctx_seq(ctx))
        self._memory = lib.llama_get_memory(ctx)
        self._batch = lib.llama_batch_init(params.n_batch, 0, 1)
        self._engine._loras.apply_to(ctx)

    def close(self) -> None:
        """Free the context (its model stays with the engine)."""
        if self._ctx is None:
            return
        ctx, self._ctx = self._ctx, None
        with contextlib.suppress(Exception):
            self._lib.llama_batch_free(self._batch)
        self._lib.llama_free(ctx)

    # -- running --------------------------------------------------------------------

    def run(self, items: Iterable[BatchItem], cancel: threading.Event) -> Iterator[ItemEvent]:
        """Answer ``items``; events arrive as they happen (not in input order).

        Iterating runs the batch on the decode thread. ``cancel`` (settable from any
        thread) stops every sequence within one step, or inside a prompt evaluation;
        the sequences running then end with ``finish_reason == "interrupted"``.
        Closing the iterator early (Ctrl-C in the consumer) cancels and waits.
        """
        out: queue.SimpleQueue[Any] = queue.SimpleQueue()

        def work() -> None:
            try:
                self._loop(deque(items), cancel, out.put)
            except BaseException as exc:  # handed to the caller's thread
                out.put(_Failure(exc))
            finally:
                out.put(_DONE)

        with self._engine._busy:
            self._abort = cancel
            finished = self._engine._decoder.submit(work)
            try:
                while (event := out.get()) is not _DONE:
                    if isinstance(event, _Failure):
                        raise event.exc
                    yield event
            finally:
                cancel.set()
                finished.wait()

    def _loop(
        self,
        pending: deque[BatchItem],
        cancel: threading.Event,
        emit: Callable[[ItemEvent], None],
    ) -> None:
        free = list(range(self.parallel - 1, -1, -1))
        active: list[_Slot] = []
        try:
            while not cancel.is_set():
                while free and pending:
                    slot = self._admit(pending.popleft(), free[-1], emit)
                    if slot is not None:
                        free.pop()
                        active.append(slot)
                if not active:
                    return
                ended = self._step(active, cancel, emit)
                if ended is None:
                    break
                for slot in ended:
                    active.remove(slot)
                    self._release(slot)
                    free.append(slot.seq_id)
        finally:
            for slot in active:  # interrupted, or a failed decode
                slot.stats.finish_reason = "interrupted"
                self._finish(slot, emit, flush=False)
                self._release(slot)

    def _admit(
        self, item: BatchItem, seq_id: int, emit: Callable[[ItemEvent], None]
    ) -> _Slot | None:
        """Start ``item`` on sequence ``seq_id``, or report why it cannot run."""
        n = len(item.prompt)
        error: LlmcliError | None = None
        if n == 0:
            error = DataError("the prompt is 0 tokens", hint="give the item some text")
        elif n >= self.n_ctx_seq:
            error = DataError(
                f"the prompt is {n} tokens but each of the {self.parallel} parallel sequences "
                f"holds {self.n_ctx_seq}",
                hint="shorten it, lower --parallel or raise --ctx",
            )
        if error is not None:
            stats = GenerationStats(prompt_tokens=n, finish_reason="error", error=error.message)
            emit(ItemEvent(item.index, stats=stats, error=error))
            return None
        sampling = item.sampling
        budget = self.n_ctx_seq - n
        max_new = min(sampling.max_tokens, budget) if sampling.max_tokens else budget
        stats = GenerationStats(prompt_tokens=n, finish_reason="length")
        self._lib.llama_memory_seq_rm(self._memory, seq_id, -1, -1)
        return _Slot(
            seq_id=seq_id,
            item=item,
            sampler=sampler_chain(self._engine, sampling),
            max_new=max_new,
            stats=stats,
            started=time.perf_counter(),
            stops=StopMatcher(sampling.stop),
        )

    def _step(
        self, active: list[_Slot], cancel: threading.Event, emit: Callable[[ItemEvent], None]
    ) -> list[_Slot] | None:
        """One round: a token for every generating sequence, then a prompt chunk of each new one.

        Returns the sequences that ended, or ``None`` when cancelled meanwhile. A prompt
        never shares a ``llama_decode`` with another sequence: with one KV stream per
        sequence llama.cpp cuts a mixed batch into equal-length pieces per sequence, and
        a prompt cut otherwise than the engine alone cuts it (``Llama.eval``: chunks of
        ``n_batch``) gets different logits (a one-token tail goes through another
        attention kernel), so greedy answers would drift from one-by-one answers.
        Generated tokens (one per sequence per round) are batched: that is where the
        sequences share the work, and one token per stream is what the engine does alone.
        """
        ended: list[_Slot] = []
        generating = [slot for slot in active if not slot.prompting]
        if generating:
            for row, slot in enumerate(generating):
                self._put(row, slot.next_token, slot.n_past, slot.seq_id, True)
                slot.row, slot.n_past = row, slot.n_past + 1
            if not self._decode(len(generating), cancel, prompting=False):
                return None
            ended += [slot for slot in generating if self._sample(slot, emit)]
        for slot in [slot for slot in active if slot.prompting]:
            if not self._feed_prompt(slot, cancel):
                return None
            if not slot.prompting and self._sample(slot, emit):
                ended.append(slot)
        return ended

    def _feed_prompt(self, slot: _Slot, cancel: threading.Event) -> bool:
        """Evaluate the next ``n_batch`` tokens of ``slot``'s prompt, alone in the batch."""
        prompt = slot.item.prompt
        chunk = prompt[slot.fed : slot.fed + self._chunk]
        slot.row = -1
        for row, token in enumerate(chunk):
            last = slot.fed == len(prompt) - 1
            self._put(row, token, slot.n_past, slot.seq_id, last)
            if last:
                slot.row = row
            slot.fed, slot.n_past = slot.fed + 1, slot.n_past + 1
        return self._decode(len(chunk), cancel, prompting=True)

    def _decode(self, n: int, cancel: threading.Event, *, prompting: bool) -> bool:
        """``llama_decode`` the first ``n`` batch entries; False if cancelled meanwhile."""
        self._batch.n_tokens = n
        self._watch_for_abort(prompting)
        try:
            rc = self._lib.llama_decode(self._ctx, self._batch)
        finally:
            if prompting:
                self._watch_for_abort(False)
        if rc != 0:
            if cancel.is_set():
                return False
            raise LlmcliError(
                f"llama.cpp failed to decode a batch of {n} tokens (code {rc})",
                hint="lower --parallel; --verbose shows llama.cpp's log",
            )
        return True

    def _put(self, i: int, token: int, pos: int, seq_id: int, logits: bool) -> None:
        batch = self._batch
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq_id
        batch.logits[i] = logits

    def _watch_for_abort(self, on: bool) -> None:
        """The abort callback costs ~10 % per decoded token: install it for prompts only."""
        self._lib.llama_set_abort_callback(
            self._ctx, self._abort_cb if on else self._no_abort_cb, None
        )

    def _sample(self, slot: _Slot, emit: Callable[[ItemEvent], None]) -> bool:
        """Sample ``slot``'s next token and report it; True when the sequence has ended."""
        engine, stats = self._engine, slot.stats
        token = int(self._lib.llama_sampler_sample(slot.sampler, self._ctx, slot.row))
        if stats.generated_tokens == 0:
            stats.ttft_s = time.perf_counter() - slot.started
        if engine.is_end_of_generation(token):
            stats.finish_reason = "stop"
            self._finish(slot, emit)
            return True
        stats.generated_tokens += 1
        text = slot.stops.feed(slot.decoder.decode(engine.token_bytes(token)))
        emit(ItemEvent(slot.item.index, piece=self._piece(text, token, slot)))
        if slot.stops.stopped:
            stats.finish_reason = "stop"
        elif stats.generated_tokens < slot.max_new:
            slot.next_token = token
            return False
        self._finish(slot, emit)
        return True

    def _piece(self, text: str, token: int, slot: _Slot) -> TokenPiece:
        logprobs = slot.item.sampling.logprobs
        if not logprobs:
            return TokenPiece(text=text, token_id=token)
        pointer = self._lib.llama_get_logits_ith(self._ctx, slot.row)
        logits = np.ctypeslib.as_array(pointer, shape=(self._engine.n_vocab,)).astype(np.float64)
        shifted = logits - logits.max()
        dist = shifted - np.log(np.exp(shifted).sum())
        top = np.argpartition(dist, -logprobs)[-logprobs:]
        top = top[np.argsort(dist[top])[::-1]]
        return TokenPiece.ranked(text, token, dist, top, self._engine.token_text)

    def _finish(
        self, slot: _Slot, emit: Callable[[ItemEvent], None], *, flush: bool = True
    ) -> None:
        stats = slot.stats
        if flush and not slot.stops.stopped:
            tail = slot.stops.feed(slot.decoder.decode(b"", final=True)) + slot.stops.flush()
            if tail:
                emit(ItemEvent(slot.item.index, piece=TokenPiece(text=tail, token_id=-1)))
        stats.total_s = time.perf_counter() - slot.started
        emit(ItemEvent(slot.item.index, stats=stats))

    def _release(self, slot: _Slot) -> None:
        """Free the sequence's KV stream and its sampler for the next item."""
        self._lib.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)
        if slot.sampler is not None:
            self._lib.llama_sampler_free(slot.sampler)
            slot.sampler = None
