"""The output norm and LM head of a GGUF model, dequantized once for the logit lens.

The logit lens applies the model's *own* final stage — output norm, then LM head —
to the residual stream after every decoder block. llama.cpp keeps those weights
quantized inside its graph, so they are read here straight from the file with the
``gguf`` package (``gguf.quants.dequantize`` knows every ggml quant type) and turned
into float32 once: for SmolLM2-135M that is a 49,152 × 576 matrix, 113 MB.

Models whose LM head is tied to the token embedding (no ``output.weight``) use
``token_embd.weight``, as llama.cpp does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmcli.errors import DataError, UsageError

RMS_KEY = "attention.layer_norm_rms_epsilon"
LAYER_NORM_KEY = "attention.layer_norm_epsilon"


@dataclass(frozen=True)
class LensWeights:
    """What turns a hidden state into logits: norm (``rms`` or ``layer``) and head."""

    norm_kind: str
    epsilon: float
    norm_weight: np.ndarray  # (n_embd,)
    norm_bias: np.ndarray | None
    head: np.ndarray  # (n_vocab, n_embd) float32
    tied: bool
    head_type: str


def load_lens_weights(path: Path) -> LensWeights:
    """Read and dequantize ``output_norm`` and the LM head of the model at ``path``."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}", hint="check the model file") from exc
    arch = _field(reader, "general.architecture")
    tensors = {t.name: t for t in reader.tensors}
    kind, eps = _norm(reader, str(arch))
    if "output_norm.weight" not in tensors:
        raise UsageError(
            f"{path.name} has no output_norm.weight: the lens needs a decoder with an output norm",
            hint="use a llama-style GGUF model",
        )
    head_name = "output.weight" if "output.weight" in tensors else "token_embd.weight"
    if head_name not in tensors:
        raise UsageError(f"{path.name} has no LM head tensor", hint="use a complete GGUF model")
    bias = tensors.get("output_norm.bias")
    head = tensors[head_name]
    return LensWeights(
        norm_kind=kind,
        epsilon=eps,
        norm_weight=_dequantize(tensors["output_norm.weight"]).reshape(-1),
        norm_bias=_dequantize(bias).reshape(-1) if bias is not None else None,
        head=_dequantize(head),
        tied=head_name == "token_embd.weight",
        head_type=head.tensor_type.name,
    )


def _norm(reader: Any, arch: str) -> tuple[str, float]:
    rms = _field(reader, f"{arch}.{RMS_KEY}")
    if rms is not None:
        return "rms", float(rms)
    layer = _field(reader, f"{arch}.{LAYER_NORM_KEY}")
    if layer is not None:
        return "layer", float(layer)
    raise UsageError(
        f"the model ({arch}) names no norm epsilon ({arch}.{RMS_KEY})",
        hint="the lens supports decoders with an RMSNorm or LayerNorm output norm",
    )


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return None
    value = field.contents() if hasattr(field, "contents") else field.parts[field.data[0]]
    if isinstance(value, np.ndarray):
        return value.item() if value.size == 1 else value.tolist()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return value


def _dequantize(tensor: Any) -> np.ndarray:
    from gguf.quants import dequantize

    data: np.ndarray = dequantize(tensor.data, tensor.tensor_type)
    return np.ascontiguousarray(data, dtype=np.float32)
