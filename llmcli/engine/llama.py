"""The llama.cpp engine (llama-cpp-python), imported only when a model is loaded.

Generation runs a low-level loop over ``Llama.generate()`` rather than the
high-level completion API, which re-detokenizes the whole completion every token
and cannot be interrupted inside a long prompt evaluation. Here:

* each token's bytes come from ``llama_token_to_piece`` with a buffer that grows
  when llama.cpp asks (tokens over 32 bytes vanish in ``Llama.detokenize``), and
  an incremental UTF-8 decoder joins characters split across tokens;
* generation runs in a worker thread while the caller's thread waits on a queue,
  so Ctrl-C reaches Python at once; the worker is stopped through llama.cpp's
  abort callback, which ends even a half-done ``llama_decode`` within milliseconds;
* the KV cache keeps the longest common prefix with the previous call
  (``generate(reset=True)``), so a chat turn evaluates only its new tokens.
"""

from __future__ import annotations

import codecs
import contextlib
import gc
import json
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmcli.engine.base import (
    Embeddings,
    Generation,
    GenerationStats,
    LoadOptions,
    LoraSpec,
    PromptInput,
    Sampling,
    TokenLevel,
    TokenPiece,
    encode,
)
from llmcli.engine.grammar import CheckedGrammarSampler, check_grammar, schema_to_gbnf
from llmcli.engine.hardware import has_amx, physical_cores, resolve_gpu_layers
from llmcli.engine.llama_cache import LlamaCache
from llmcli.engine.llama_support import (
    _DONE,
    N_BATCH,
    _DecodeThread,
    _Failure,
    _python_stderr_to_null,
    _silence_llama_log,
    _without_extra_buffers,
    effective_ctx,
)
from llmcli.engine.llama_tokens import LlamaTokens
from llmcli.engine.lora import LoraAdapters
from llmcli.engine.signals import deferred_signals
from llmcli.engine.stops import StopMatcher
from llmcli.errors import DataError, LlmcliError


class LlamaEngine(LlamaTokens, LlamaCache):
    """A loaded GGUF model behind the :class:`~llmcli.engine.base.Engine` protocol."""

    def __init__(self, path: Path, options: LoadOptions, *, trained_ctx: int | None = None):
        import llama_cpp

        self._lib = llama_cpp
        self.model_path = path
        self.model_name = path.name.removesuffix(".gguf")
        self.notices: list[str] = []
        self.threads = options.threads or physical_cores()
        self.gpu_layers = resolve_gpu_layers(
            options.gpu_layers, bool(llama_cpp.llama_supports_gpu_offload())
        )
        self.n_ctx = effective_ctx(options.n_ctx, trained_ctx)
        if trained_ctx and self.n_ctx > trained_ctx:
            # llama.cpp only logs "possible training context overflow" (hidden without
            # --verbose); say it once, in llmcli's words.
            self.notices.append(
                f"context {self.n_ctx} > trained context {trained_ctx}: "
                "text beyond it may be garbled"
            )
        self._llama: Any = None
        try:
            with deferred_signals():  # Ctrl-C inside llama.cpp's log callback is lost
                self._llama = self._load(llama_cpp, path, options)
        except (ValueError, RuntimeError) as exc:
            raise DataError(
                f"llama.cpp could not load {path}: {exc}",
                hint="check the file is a complete GGUF model (--verbose shows why)",
            ) from exc
        except BaseException:  # Ctrl-C held during the load, re-raised as it ended
            self._free_llama()
            raise
        try:  # a Ctrl-C from here on must not leave the model to the garbage collector
            self._set_up(llama_cpp, options)
        except BaseException:
            self.close()
            raise

    def _set_up(self, llama_cpp: Any, options: LoadOptions) -> None:
        """Everything after the load: handles, callbacks, the decode thread, template, LoRA."""
        if not options.verbose:
            _silence_llama_log()
        self._vocab = self._llama._model.vocab
        self._ctx = self._llama._ctx.ctx
        self.n_vocab = int(self._llama.n_vocab())
        self._pieces: dict[int, bytes] = {}
        self._special_pieces: dict[int, bytes] = {}
        self._abort = threading.Event()
        self._abort_cb = llama_cpp.ggml_abort_callback(self._should_abort)
        self._no_abort_cb = llama_cpp.ggml_abort_callback()
        self._busy = threading.Lock()
        self._decoder = _DecodeThread()
        self._grammars: dict[str, str] = {}
        self.template = self._choose_template(options.chat_template)
        self._loras = LoraAdapters(llama_cpp, self._llama._model.model, self._ctx)
        with deferred_signals():
            self._loras.load(options.loras)

    def _load(self, llama_cpp: Any, path: Path, options: LoadOptions) -> Any:
        # Without --verbose nothing of llama.cpp's log may reach stderr: the binding's
        # log callback still prints some lines while the context is created (e.g.
        # "possible training context overflow" for --ctx above the trained length).
        quiet = contextlib.nullcontext() if options.verbose else _python_stderr_to_null()
        with _without_extra_buffers(llama_cpp, has_amx()), quiet:
            return llama_cpp.Llama(
                model_path=str(path),
                n_ctx=self.n_ctx,
                n_batch=min(N_BATCH, self.n_ctx),
                n_threads=self.threads,
                n_threads_batch=self.threads,
                n_gpu_layers=self.gpu_layers,
                verbose=options.verbose,
            )

    # -- native handles (side contexts: lens, embeddings, bench) -------------

    @property
    def native_lib(self) -> Any:
        """The ``llama_cpp`` module this engine was loaded with."""
        return self._lib

    @property
    def native_model(self) -> Any:
        """The loaded ``llama_model *``; side contexts share its weights."""
        return self._llama._model.model

    def native_context_params(self) -> Any:
        """A copy of the ``llama_context_params`` this engine's own context was made with.

        Side contexts start from it, so they compute exactly as generation does (same
        flash-attention choice, KV types, RoPE settings); only sizes and callbacks change.
        """
        params = self._llama.context_params
        return type(params).from_buffer_copy(params)

    # -- LoRA adapters --------------------------------------------------------

    @property
    def loras(self) -> tuple[LoraSpec, ...]:
        """The applied adapters and their current scales."""
        return self._loras.specs

    def set_lora_scale(self, index: int, scale: float) -> None:
        """Change adapter ``index``'s scale without reloading; the KV cache is dropped."""
        with self._busy:
            self._loras.set_scale(index, scale)
            self._llama.reset()  # cached keys/values were computed with the old scale

    def count_tokens(self, prompt: PromptInput) -> int:
        return len(encode(self, prompt))

    def token_level(self) -> TokenLevel:
        return self

    def embeddings(self) -> Embeddings:
        """Pooled vectors from a side context of this model (``llmcli.engine.embed``)."""
        from llmcli.engine.embed import LocalEmbeddings

        return LocalEmbeddings(self)

    def generate(self, prompt: PromptInput, sampling: Sampling) -> Generation:
        """Start generating after ``prompt``; iterate the result for text pieces."""
        ids = encode(self, prompt)
        if not ids:  # llama-cpp-python would fail an assert deep inside sampling
            raise DataError(
                f"the prompt is 0 tokens: {self.model_name}'s tokenizer produced nothing",
                hint="the model's vocabulary cannot spell this text; check the model file",
            )
        if len(ids) >= self.n_ctx:
            raise DataError(
                f"prompt is {len(ids)} tokens but the context holds {self.n_ctx}",
                hint="shorten the input or raise --ctx",
            )
        grammar = self.grammar_for(sampling)
        stats = GenerationStats(prompt_tokens=len(ids))
        cancel = threading.Event()
        pieces = self._stream(ids, sampling, grammar, stats, cancel)
        return Generation(pieces, stats, on_cancel=cancel.set)

    def grammar_for(self, sampling: Sampling) -> str | None:
        """The GBNF that constrains ``sampling``'s answers, compiled once to check it.

        A grammar llama.cpp cannot compile is a usage error here, before generation (handed
        to the sampler it would crash the process at the first token).
        """
        if sampling.grammar is not None:
            key = "gbnf:" + sampling.grammar
        elif sampling.json_schema is not None:
            key = "schema:" + json.dumps(sampling.json_schema, sort_keys=True)
        else:
            return None
        grammar = self._grammars.get(key)
        if grammar is None:
            raw, schema = sampling.grammar, sampling.json_schema or {}
            grammar = raw if raw is not None else schema_to_gbnf(schema)
            check_grammar(self._lib, self._vocab, grammar)
            self._grammars[key] = grammar
        return grammar

    def _stream(
        self,
        prompt: list[int],
        sampling: Sampling,
        grammar: str | None,
        stats: GenerationStats,
        cancel: threading.Event,
    ) -> Iterator[TokenPiece]:
        """Run the worker thread; relay its pieces to the caller's thread."""
        out: queue.SimpleQueue[Any] = queue.SimpleQueue()

        def work() -> None:
            try:
                self._produce(prompt, sampling, grammar, stats, cancel, out.put)
            except BaseException as exc:  # handed to the caller's thread
                out.put(_Failure(exc))
            finally:
                out.put(_DONE)

        with self._busy:
            self._abort = cancel
            finished = self._decoder.submit(work)
            try:
                while True:
                    item = out.get()
                    if item is _DONE:
                        break
                    if isinstance(item, _Failure):
                        raise item.exc
                    yield item
            finally:
                cancel.set()
                finished.wait()

    def _should_abort(self, _data: Any) -> bool:
        return self._abort.is_set()

    def _watch_for_abort(self, on: bool) -> None:
        """Install the abort callback only while the prompt is evaluated.

        ggml calls it ~600 times per decoded token (once per graph node): a Python
        callback there costs ~10 % of decode speed. A long prompt evaluation is the
        only place a token-level check is too coarse, so it is watched there alone.
        """
        callback = self._abort_cb if on else self._no_abort_cb
        self._lib.llama_set_abort_callback(self._ctx, callback, None)

    def _produce(
        self,
        prompt: list[int],
        sampling: Sampling,
        grammar: str | None,
        stats: GenerationStats,
        cancel: threading.Event,
        emit: Callable[[TokenPiece], None],
    ) -> None:
        llama = self._llama
        self._avoid_single_token_replay(prompt)
        stats.cached_tokens = self._cached_prefix(prompt)
        llama.set_seed(sampling.seed if sampling.seed is not None else random.getrandbits(31))
        budget = self.n_ctx - len(prompt)
        max_new = min(sampling.max_tokens, budget) if sampling.max_tokens else budget
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopMatcher(sampling.stop)
        started = time.perf_counter()
        stats.finish_reason = "length"
        tokens = llama.generate(prompt, reset=True, **sampling.knob_values("llama"))
        if grammar:
            self._sample_with(grammar)
        self._watch_for_abort(True)
        try:
            for token in tokens:
                if stats.generated_tokens == 0:
                    stats.ttft_s = time.perf_counter() - started
                    self._watch_for_abort(False)
                if cancel.is_set():
                    stats.finish_reason = "interrupted"
                    break
                if self.is_end_of_generation(token):
                    stats.finish_reason = "stop"
                    break
                stats.generated_tokens += 1
                text = stops.feed(decoder.decode(self.token_bytes(token)))
                emit(self._piece(text, token, sampling.logprobs))
                if stops.stopped:
                    stats.finish_reason = "stop"
                    break
                if stats.generated_tokens >= max_new:
                    break
        except RuntimeError:
            if not cancel.is_set():
                raise
            stats.finish_reason = "interrupted"
        finally:
            self._watch_for_abort(False)
            with contextlib.suppress(Exception):
                tokens.close()
            llama.__dict__.pop("_init_sampler", None)
            stats.total_s = time.perf_counter() - started
        if not stops.stopped:
            tail = stops.feed(decoder.decode(b"", final=True)) + stops.flush()
            if tail:
                emit(TokenPiece(text=tail, token_id=-1))

    def _sample_with(self, grammar: str) -> None:
        """Make the next ``Llama.generate()`` sample through a :class:`CheckedGrammarSampler`.

        ``generate()`` builds its sampler chain with ``_init_sampler`` when it starts; an
        instance attribute stands in for that method until the generation ends.
        """
        llama = self._llama
        plain_chain = type(llama)._init_sampler

        def init_sampler(**kwargs: Any) -> CheckedGrammarSampler:
            kwargs.pop("grammar", None)
            chain = plain_chain(llama, **kwargs)
            return CheckedGrammarSampler(self._lib, chain, self._vocab, grammar, self.n_vocab)

        llama._init_sampler = init_sampler

    def next_token_logprobs(self, prompt: Sequence[int]) -> np.ndarray:
        """The model's log-probabilities for the token after ``prompt`` (one forward pass)."""
        if not prompt:
            raise LlmcliError("the prompt is empty", hint="give some text")

        def forward() -> np.ndarray:
            self._avoid_single_token_replay(prompt)
            tokens = self._llama.generate(list(prompt), temp=0.0, reset=True)
            try:
                next(tokens)
                return self._last_logprobs()
            finally:
                tokens.close()

        with self._busy:
            self._abort = threading.Event()
            result: np.ndarray = self._decoder.call(forward)
            return result

    # -- KV state across processes (used by the engine server) -------------------

    def close(self) -> None:
        if self._llama is None:  # closed already: its context is freed
            return
        try:
            with contextlib.suppress(Exception):
                self._watch_for_abort(False)
            with contextlib.suppress(Exception):
                self._loras.close()
            with contextlib.suppress(Exception):
                self._decoder.close()
        finally:  # even when a Ctrl-C lands above: never leave the model to the collector
            self._free_llama()

    def _free_llama(self) -> None:
        """Free the model where a Ctrl-C is held and re-raised afterwards.

        Freeing logs through Python callbacks, and ``Llama.__del__`` swallows exceptions:
        left to the garbage collector, a Ctrl-C arriving while it runs would be lost.
        """
        with deferred_signals():
            llama, self._llama = self._llama, None
            if llama is not None:
                llama.close()
            del llama
            gc.collect()  # its internals sit in reference cycles: collect them here too
