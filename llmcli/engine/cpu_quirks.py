"""Work around CPU-specific crashes in llama.cpp's CPU backend before a model is loaded.

On CPUs with Intel AMX (``amx_tile`` in ``/proc/cpuinfo``) under hypervisors that do not
give the process AMX tile state, ggml's AMX extra buffer type passes its start-up check
and then segfaults in ``ggml_backend_amx_mul_mat`` on the first multi-token decode
(measured on this project's CI machines: every prompt of more than one token crashed).
The binding's ``Llama`` does not expose ``use_extra_bufts``, so the default model
parameters it starts from are wrapped to turn extra buffer types (weight repacking) off
on such CPUs. ``LLMCLI_EXTRA_BUFTS=1`` turns them back on, ``=0`` off everywhere.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any


@functools.cache
def cpu_has_amx() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return any(line.startswith("flags") and " amx_tile" in line for line in text.splitlines())


def extra_buffer_types_wanted() -> bool:
    setting = os.environ.get("LLMCLI_EXTRA_BUFTS", "").strip()
    if setting in ("0", "1"):
        return setting == "1"
    return not cpu_has_amx()


def apply(llama_cpp: Any) -> None:
    """Make every later ``Llama(...)`` start from parameters without extra buffer types
    when they would crash; idempotent."""
    module = llama_cpp.llama_cpp  # the ctypes module Llama reads its defaults from
    if extra_buffer_types_wanted() or getattr(module, "_llmcli_patched", False):
        return
    original = module.llama_model_default_params

    def defaults() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    module.llama_model_default_params = defaults
    module._llmcli_patched = True
