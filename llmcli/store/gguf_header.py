"""What a GGUF header holds: the tensor table, the metadata, and the ggml type tables.

These are plain values, apart from the parsing (:mod:`llmcli.store.gguf`) and the
bounded byte reads (:mod:`llmcli.store.gguf_bytes`), because every reader of a model
(``models show``, the memory fit, the anatomy, the store's manifest, a remote header
read over HTTP) needs the facts and the error type, and none of them the parser's
internals. :class:`GGUFError` lives here so that code which only inspects a header
can catch it without importing the reader.

Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmcli.errors import DataError

# ggml type id -> (name, elements per block, bytes per block), from ggml.h / gguf-py.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36),
    41: ("Q1_0", 128, 18),
}

# general.file_type (llama.h ``llama_ftype``) -> the name people use for the quantization.
FILE_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    4: "Q4_1_SOME_F16",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
    39: "NVFP4",
    40: "Q1_0",
}

CORRUPT_HINT = "the file is damaged or not a llama.cpp model: download it again"
TRUNCATED_HINT = "the download was probably interrupted: download the model again"


class GGUFError(DataError):
    """A file that is not a usable GGUF model; the message names the file and the problem."""

    def __init__(
        self, message: str, hint: str | None = CORRUPT_HINT, *, path: Path | str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.path = path


@dataclass(frozen=True)
class TensorInfo:
    """One row of the tensor table. ``shape`` is in ggml order (fastest-varying first)."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int  # relative to GGUFFile.data_offset

    @property
    def type_name(self) -> str:
        return GGML_TYPES[self.ggml_type][0] if self.ggml_type in GGML_TYPES else "?"

    @property
    def n_elements(self) -> int:
        n = 1
        for dim in self.shape:
            n *= dim
        return n

    @property
    def n_bytes(self) -> int:
        _, block, size = GGML_TYPES[self.ggml_type]
        return self.n_elements // block * size


@dataclass
class GGUFFile:
    """Everything in a GGUF header; tensor data is never read."""

    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo]
    data_offset: int
    file_size: int
    alignment: int
    byte_order: str = field(default="little")

    @property
    def architecture(self) -> str | None:
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None

    @property
    def name(self) -> str:
        value = self.metadata.get("general.name")
        return value if isinstance(value, str) and value else self.path.stem

    def arch_value(self, key: str) -> Any:
        """``{architecture}.{key}``, e.g. ``arch_value("context_length")``; None when absent."""
        if self.architecture is None:
            return None
        return self.metadata.get(f"{self.architecture}.{key}")

    @property
    def context_length(self) -> int | None:
        return _as_int(self.arch_value("context_length"))

    @property
    def block_count(self) -> int | None:
        return _as_int(self.arch_value("block_count"))

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) else None

    @property
    def template_sha256(self) -> str | None:
        template = self.chat_template
        if template is None:
            return None
        return hashlib.sha256(template.encode("utf-8", "surrogatepass")).hexdigest()

    @property
    def file_type_name(self) -> str | None:
        """The quantization: ``general.file_type``, else the type holding most weights."""
        file_type = self.metadata.get("general.file_type")
        if isinstance(file_type, int) and file_type in FILE_TYPES:
            return FILE_TYPES[file_type]
        return self.dominant_type_name

    @property
    def dominant_type_name(self) -> str | None:
        weights: Counter[str] = Counter()
        for tensor in self.tensors:
            weights[tensor.type_name] += tensor.n_elements
        return weights.most_common(1)[0][0] if weights else None

    @property
    def parameter_count(self) -> int:
        return sum(tensor.n_elements for tensor in self.tensors)

    @property
    def is_lora_adapter(self) -> bool:
        return self.metadata.get("general.type") == "adapter"


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return None
