"""LoRA adapters on a loaded model, through llama.cpp's low-level adapter calls.

Why not ``Llama(lora_path=...)``: the high-level class takes one adapter, fixes its
scale for the life of the model, and turns mmap off. Here each adapter is loaded
once with ``llama_adapter_lora_init`` and the context is told which adapters to
use, and how strongly, with ``llama_set_adapters_lora``: several adapters at once,
and a new scale takes effect on the next decode without reloading anything.

llama.cpp applies an adapter as ``W·x + scale · (alpha / rank) · B·(A·x)`` for each
target weight ``W``; scale 0 leaves the base model's output unchanged.

Ownership: adapters are freed only by :meth:`LoraAdapters.close`, which the engine
calls before it frees the model (never from ``__del__``: some llama.cpp versions
free an adapter together with its model, and freeing it again would crash).
"""

from __future__ import annotations

import ctypes
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from llmcli.engine.base import LoraSpec
from llmcli.errors import DataError, LlmcliError, UsageError


@dataclass
class _Loaded:
    spec: LoraSpec
    handle: Any  # llama_adapter_lora_p (a ctypes pointer)


def check_scale(scale: float) -> float:
    """A scale must be a finite number (negative scales subtract the delta, which is allowed)."""
    if not math.isfinite(scale):
        raise UsageError(f"LoRA scale {scale} is not a finite number", hint="use e.g. 0.5 or 1")
    return float(scale)


class LoraAdapters:
    """The adapters loaded for one model and the scales the context applies them with."""

    def __init__(self, lib: Any, model: Any, ctx: Any) -> None:
        self._lib = lib
        self._model = model
        self._ctx = ctx
        self._loaded: list[_Loaded] = []

    def __len__(self) -> int:
        return len(self._loaded)

    @property
    def specs(self) -> tuple[LoraSpec, ...]:
        """Each adapter's path and current scale, in the order given."""
        return tuple(item.spec for item in self._loaded)

    def load(self, specs: Sequence[LoraSpec]) -> None:
        """Load every adapter file, then apply them all at their scales."""
        for spec in specs:
            check_scale(spec.scale)
            handle = self._lib.llama_adapter_lora_init(self._model, os.fsencode(spec.path))
            if not handle:  # a NULL pointer: llama.cpp logged why and gave up
                raise DataError(
                    f"llama.cpp could not load the LoRA adapter {spec.path}",
                    hint="check it was converted for this base model (--verbose shows why)",
                )
            self._loaded.append(_Loaded(spec, handle))
        if self._loaded:
            self.apply()

    def set_scale(self, index: int, scale: float) -> None:
        """Change one adapter's scale; it applies from the next evaluated token."""
        if not 0 <= index < len(self._loaded):
            raise UsageError(
                f"there is no LoRA adapter #{index + 1}",
                hint=f"{len(self._loaded)} adapter(s) are loaded",
            )
        item = self._loaded[index]
        item.spec = replace(item.spec, scale=check_scale(scale))
        self.apply()

    def apply(self) -> None:
        """Tell the context which adapters to use and how strongly."""
        self.apply_to(self._ctx)

    def apply_to(self, ctx: Any) -> None:
        """Apply the adapters to ``ctx`` too (a second context on the same model, for batches).

        Detach them (``llama_free`` of that context) before :meth:`close` frees them.
        """
        n = len(self._loaded)
        if ctx is not self._ctx and not n:
            return
        handles = (self._lib.llama_adapter_lora_p_ctypes * n)(*(i.handle for i in self._loaded))
        scales = (ctypes.c_float * n)(*(i.spec.scale for i in self._loaded))
        if self._lib.llama_set_adapters_lora(ctx, handles, n, scales) != 0:
            raise LlmcliError(
                "llama.cpp refused to apply the LoRA adapters",
                hint="run with --verbose to see llama.cpp's reason",
            )

    def close(self) -> None:
        """Detach the adapters from the context and free them (before the model is freed)."""
        if not self._loaded:
            return
        self._lib.llama_set_adapters_lora(self._ctx, None, 0, None)
        for item in self._loaded:
            self._lib.llama_adapter_lora_free(item.handle)
        self._loaded.clear()
