"""The llama.cpp engine's KV cache: what it holds, replay safety, and saving one sequence.

A mixin of :class:`~llmcli.engine.llama.LlamaEngine` (the engine sets the attributes
declared here); the engine server saves and restores conversations through
``save_sequence``/``load_sequence``.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np


class LlamaCache:
    _llama: Any
    _lib: Any
    _ctx: Any
    _busy: threading.Lock
    n_ctx: int

    def _avoid_single_token_replay(self, prompt: Sequence[int]) -> None:
        """Make a fully cached prompt re-evaluate its last two tokens, not one.

        When the KV cache already holds the whole prompt (``/retry``, the same ``next``
        twice), llama-cpp-python 0.3.36 drops the cache from the last prompt position and
        decodes that one token again; the logits it gets are wrong (SmolLM2 then predicts
        end-of-text at once). Re-evaluating two tokens gives the right ones, so the cache is
        trimmed one token further first.
        """
        llama = self._llama
        if len(prompt) < 2 or llama.n_tokens < len(prompt):
            return
        if self._cached_prefix(list(prompt)) >= len(prompt) - 1:
            llama.n_tokens = len(prompt) - 2
            llama._ctx.kv_cache_seq_rm(-1, llama.n_tokens, -1)

    def _cached_prefix(self, prompt: list[int]) -> int:
        """How many prompt tokens the KV cache already holds (for stats)."""
        held = self._llama.input_ids[: self._llama.n_tokens]
        n = min(len(held), len(prompt))
        if n == 0:
            return 0
        mismatch = np.nonzero(held[:n] != np.asarray(prompt[:n]))[0]
        return int(mismatch[0]) if mismatch.size else n

    def save_sequence(self) -> tuple[list[int], bytes]:
        """The token ids the KV cache holds and the cache's cells for them.

        ``llama_state_seq_get_data`` copies one sequence's keys and values (no logits:
        a restored prompt always evaluates at least its last tokens again).
        """
        with self._busy:
            n = int(self._llama.n_tokens)
            tokens = [int(t) for t in self._llama.input_ids[:n]]
            size = int(self._lib.llama_state_seq_get_size(self._ctx, 0))
            buf = (ctypes.c_uint8 * size)()
            written = int(self._lib.llama_state_seq_get_data(self._ctx, buf, size, 0))
            return tokens, ctypes.string_at(buf, min(written, size))

    def load_sequence(self, tokens: Sequence[int], data: bytes) -> bool:
        """Put a saved sequence back into the KV cache; False (cache emptied) if refused."""
        with self._busy:
            llama = self._llama
            if not 0 < len(tokens) < self.n_ctx:
                return False
            llama._ctx.kv_cache_seq_rm(-1, 0, -1)
            llama.n_tokens = 0
            buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
            read = int(self._lib.llama_state_seq_set_data(self._ctx, buf, len(data), 0))
            if read != len(data):
                llama._ctx.kv_cache_seq_rm(-1, 0, -1)
                return False
            llama.input_ids[: len(tokens)] = tokens
            llama.n_tokens = len(tokens)
            llama._requires_eval = True  # the logits were not restored
            return True

    def cached_tokens(self, prompt: Sequence[int]) -> int:
        """How many of ``prompt``'s tokens the KV cache already holds."""
        return self._cached_prefix(list(prompt))
