"""Many prompts at once: continuous batching of independent sequences on one llama.cpp context.

One context is created with ``n_seq_max = parallel`` and a KV cache that is *not*
unified: llama.cpp then gives every sequence its own stream of ``n_ctx / parallel``
cells (``llama_n_ctx_seq``), so an item can never take another's room and an item
too long for its share fails alone while the others go on.

Every step builds one ``llama_batch``: the last sampled token of each sequence that
is generating, then as many prompt tokens of newly admitted items as the batch holds
(a long prompt is split over several steps). One ``llama_decode`` evaluates them all;
each sequence then samples from its own row of logits with its own sampler chain
(its own seed). A sequence that ends frees its slot and KV stream, and the next item
is admitted at once: continuous batching, as in llama-server.

The facts the single-sequence engine rests on hold here too: all evaluation runs on
the engine's one long-lived decode thread; token bytes come from the growing-buffer
piece function and an incremental UTF-8 decoder per sequence; the abort callback is
installed while prompt tokens are evaluated, so Ctrl-C ends a long prompt at once.

The sampler chain is built exactly as llama-cpp-python's ``Llama.generate`` builds
it (penalties over the last 64 tokens, then greedy, or top-k, typical, top-p, min-p,
temperature and the seeded distribution), so an item gives the answer it would give
alone with the same seed, as long as llama.cpp computes the same logits.
"""

from __future__ import annotations

import codecs
import contextlib
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmcli.engine.base import CTX_GRANULE, GenerationStats, Sampling, TokenPiece
from llmcli.engine.stops import StopMatcher
from llmcli.errors import DataError, LlmcliError

PENALTY_LAST_N = 64
"""llama-cpp-python's ``last_n_tokens_size`` default, which ``Llama.generate`` uses."""

N_BATCH = 512
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
        self._ctx: Any = None
        self._batch: Any = None
        self._engine._decoder.call(self._create)

    # -- setup ------------------------------------------------------------------

    def _create(self) -> None:
        lib, llama = self._lib, self._engine._llama
        params = lib.llama_context_default_params()
        params.n_ctx = self.n_ctx_seq * self.parallel
        params.n_batch = N_BATCH
        params.n_ubatch = N_BATCH
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
        self._batch = lib.llama_batch_init(N_BATCH, 0, 1)
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
                if not self._decode_step(active, cancel):
                    break
                for slot in [s for s in active if s.row >= 0]:
                    if self._sample(slot, emit):
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
            sampler=self._sampler_chain(sampling),
            max_new=max_new,
            stats=stats,
            started=time.perf_counter(),
            stops=StopMatcher(sampling.stop),
        )

    def _sampler_chain(self, sampling: Sampling) -> Any:
        """The chain ``Llama.generate`` would build for ``sampling`` (see the module doc)."""
        lib = self._lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())

        def add(sampler: Any) -> None:
            lib.llama_sampler_chain_add(chain, sampler)

        add(
            lib.llama_sampler_init_penalties(
                self._engine.n_vocab,
                PENALTY_LAST_N,
                sampling.repeat_penalty,
                0.0,
                getattr(sampling, "presence_penalty", 0.0),
            )
        )
        grammar = self._engine.grammar_for(sampling)  # compiled and checked once, cached
        if grammar:  # --schema/--json-object/--grammar: where Llama.generate puts it too
            add(lib.llama_sampler_init_grammar(self._engine._vocab, grammar.encode(), b"root"))
        seed = sampling.seed if sampling.seed is not None else random.getrandbits(31)
        temp = 0.0 if sampling.greedy else sampling.temperature
        if temp < 0.0:
            add(lib.llama_sampler_init_dist(seed))
        elif temp == 0.0:
            add(lib.llama_sampler_init_greedy())
        else:
            add(lib.llama_sampler_init_top_k(sampling.top_k))
            add(lib.llama_sampler_init_typical(1.0, 1))
            add(lib.llama_sampler_init_top_p(sampling.top_p, 1))
            add(lib.llama_sampler_init_min_p(sampling.min_p, 1))
            add(lib.llama_sampler_init_temp(temp))
            add(lib.llama_sampler_init_dist(seed))
        return chain

    def _decode_step(self, active: list[_Slot], cancel: threading.Event) -> bool:
        """Evaluate one batch for every active sequence; False if cancelled meanwhile."""
        batch, n = self._batch, 0
        for slot in active:
            slot.row = -1
            if not slot.prompting:
                self._put(n, slot.next_token, slot.n_past, slot.seq_id, True)
                slot.row, slot.n_past, n = n, slot.n_past + 1, n + 1
        prompting = False
        for slot in active:
            if not slot.prompting or n >= N_BATCH:
                continue
            prompting = True
            prompt = slot.item.prompt
            take = min(len(prompt) - slot.fed, N_BATCH - n)
            for token in prompt[slot.fed : slot.fed + take]:
                last = slot.fed == len(prompt) - 1
                self._put(n, token, slot.n_past, slot.seq_id, last)
                if last:
                    slot.row = n
                slot.fed, slot.n_past, n = slot.fed + 1, slot.n_past + 1, n + 1
        batch.n_tokens = n
        self._watch_for_abort(prompting)
        try:
            rc = self._lib.llama_decode(self._ctx, batch)
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
