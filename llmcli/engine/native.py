"""Side contexts on a loaded llama.cpp model, and the ggml tensor access the lens needs.

A :class:`~llmcli.engine.llama.LlamaEngine` owns one ``llama_context`` for generation.
The logit lens needs llama.cpp's evaluation callback (``cb_eval``), embeddings need a
context created with ``embeddings=True`` and a pooling type, and the benchmark wants a
context of exactly ``pp + tg`` tokens: all three are fixed when a context is created,
so each gets its own *side context* on the same ``llama_model`` (the weights are shared,
only a small KV cache and compute buffer are new). Everything here runs one decode at a
time on the caller's thread.

Tensor access goes through ``libggml-base`` (shipped inside llama-cpp-python):
``ggml_get_name`` and ``ggml_backend_tensor_get``, which copies from whatever backend
holds the tensor (CPU or GPU). The shape is read from the first fields of
``struct ggml_tensor`` (``type, buffer, ne[4], nb[4]``), whose layout has been stable
across ggml versions; nothing beyond ``nb`` is read.
"""

from __future__ import annotations

import contextlib
import ctypes
import pathlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmcli.engine.base import round_ctx
from llmcli.errors import DataError

GGML_TYPE_F32 = 0

EvalCallback = Callable[[int, bool], bool]
"""``(tensor address, ask) -> bool``: ggml's ``ggml_backend_sched_eval_callback``."""


class _TensorHead(ctypes.Structure):
    """The leading fields of ``struct ggml_tensor`` (ggml.h)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * 4),
        ("nb", ctypes.c_size_t * 4),
    ]


_GGML: Any = None


def _ggml_base() -> Any:
    """``libggml-base`` from llama-cpp-python's own ``lib`` folder, with typed signatures."""
    global _GGML
    if _GGML is None:
        import llama_cpp

        folder = pathlib.Path(llama_cpp.__file__).parent / "lib"
        candidates = sorted(folder.glob("libggml-base.*")) or sorted(folder.glob("ggml-base.*"))
        if not candidates:
            raise DataError(
                f"libggml-base is missing from {folder}",
                hint="reinstall llama-cpp-python (pip install --force-reinstall llama-cpp-python)",
            )
        lib = ctypes.CDLL(str(candidates[0]))
        lib.ggml_get_name.restype = ctypes.c_char_p
        lib.ggml_get_name.argtypes = [ctypes.c_void_p]
        lib.ggml_backend_tensor_get.restype = None
        lib.ggml_backend_tensor_get.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_size_t,
        ]
        _GGML = lib
    return _GGML


def tensor_name(tensor: int) -> str:
    raw = _ggml_base().ggml_get_name(tensor)
    return raw.decode("utf-8", errors="replace") if raw else ""


def last_row(tensor: int) -> np.ndarray | None:
    """The last row (the last token's vector) of a 2-D F32 activation, copied out.

    Only ``ne[0]`` floats cross the bus, whatever the number of tokens in the batch.
    None for any other type or layout (the caller then just does not see that tensor).
    """
    head = _TensorHead.from_address(tensor)
    width, rows = int(head.ne[0]), int(head.ne[1])
    if head.type != GGML_TYPE_F32 or width <= 0 or rows <= 0 or head.nb[0] != 4:
        return None
    out = np.empty(width, dtype=np.float32)
    offset = int(head.nb[1]) * (rows - 1)
    _ggml_base().ggml_backend_tensor_get(tensor, out.ctypes.data, offset, width * 4)
    return out


@dataclass(frozen=True)
class SideContextSpec:
    n_ctx: int
    threads: int
    n_batch: int | None = None
    embeddings: bool = False
    pooling: int | None = None
    eval_callback: EvalCallback | None = None


class SideContext:
    """A ``llama_context`` of its own on an engine's model; close it (or use ``with``)."""

    def __init__(self, lib: Any, model: Any, spec: SideContextSpec, params: Any = None) -> None:
        self._lib = lib
        self.n_ctx = round_ctx(spec.n_ctx)
        self.n_batch = min(spec.n_batch or self.n_ctx, self.n_ctx)
        if params is None:
            params = lib.llama_context_default_params()
        params.n_ctx = self.n_ctx
        params.n_batch = self.n_batch
        params.n_ubatch = self.n_batch
        params.n_seq_max = 1
        params.n_threads = spec.threads
        params.n_threads_batch = spec.threads
        params.no_perf = True
        if spec.embeddings:
            params.embeddings = True
        if spec.pooling is not None:
            params.pooling_type = spec.pooling
        self._callback: Any = None
        if spec.eval_callback is not None:
            user = spec.eval_callback
            self._callback = lib.ggml_backend_sched_eval_callback(
                lambda tensor, ask, _data: bool(user(int(tensor), bool(ask)))
            )
            params.cb_eval = self._callback
            params.cb_eval_user_data = None
        self.ctx = lib.llama_init_from_model(model, params)
        if not self.ctx:
            raise DataError(
                "llama.cpp could not create a context for this model",
                hint="lower --ctx, or free some memory (--verbose shows why)",
            )
        self._batch = lib.llama_batch_init(self.n_batch, 0, 1)
        self.n_embd = int(lib.llama_model_n_embd(model))
        self.n_vocab = int(lib.llama_vocab_n_tokens(lib.llama_model_get_vocab(model)))

    def clear(self) -> None:
        """Forget every cached token (the next decode starts at position 0)."""
        self._lib.llama_memory_clear(self._lib.llama_get_memory(self.ctx), True)

    def decode(self, ids: Sequence[int], *, start: int = 0, outputs: str = "last") -> None:
        """Evaluate ``ids`` at positions ``start…``, in batches of ``n_batch``.

        ``outputs``: ``"last"`` asks for the logits of the last token only, ``"all"``
        for every token (pooled embeddings), ``"none"`` for none (benchmark warm-up).
        """
        if start + len(ids) > self.n_ctx:
            raise DataError(
                f"{start + len(ids)} tokens do not fit a context of {self.n_ctx}",
                hint="shorten the input",
            )
        for first in range(0, len(ids), self.n_batch):
            chunk = ids[first : first + self.n_batch]
            final = first + len(chunk) == len(ids)
            self._fill(chunk, start + first, outputs=outputs, final=final)
            status = int(self._lib.llama_decode(self.ctx, self._batch))
            if status != 0:
                raise DataError(
                    f"llama_decode failed with status {status}",
                    hint="run with --verbose to see llama.cpp's log",
                )

    def _fill(self, chunk: Sequence[int], pos: int, *, outputs: str, final: bool) -> None:
        batch = self._batch
        batch.n_tokens = len(chunk)
        every = outputs == "all"
        for i, token in enumerate(chunk):
            batch.token[i] = int(token)
            batch.pos[i] = pos + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = every
        if outputs == "last" and final:
            batch.logits[len(chunk) - 1] = True

    def last_logits(self) -> np.ndarray:
        pointer = self._lib.llama_get_logits_ith(self.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).astype(np.float64)

    def pooled_embedding(self) -> np.ndarray:
        pointer = self._lib.llama_get_embeddings_seq(self.ctx, 0)
        if not pointer:
            raise DataError(
                "llama.cpp returned no pooled embedding",
                hint="choose --pooling mean, last or cls",
            )
        return np.ctypeslib.as_array(pointer, shape=(self.n_embd,)).astype(np.float64)

    def synchronize(self) -> None:
        self._lib.llama_synchronize(self.ctx)

    def close(self) -> None:
        if self._batch is not None:
            self._lib.llama_batch_free(self._batch)
            self._batch = None
        if self.ctx:
            self._lib.llama_free(self.ctx)
            self.ctx = None
        self._callback = None

    def __enter__(self) -> SideContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def side_context(engine: Any, spec: SideContextSpec) -> Iterator[SideContext]:
    """A side context on ``engine``'s model (a :class:`LlamaEngine`), freed on exit."""
    context = SideContext(
        engine.native_lib, engine.native_model, spec, engine.native_context_params()
    )
    try:
        yield context
    finally:
        context.close()
