"""Write small synthetic (and hostile) GGUF files with ``struct``, for tests.

Why by hand and not with the ``gguf`` package: hostile files need fields the
writer refuses to produce (wrong magic, absurd counts, lengths that lie), and
hand-built bytes make each test say exactly which field is wrong. One test
(``tests/test_gguf.py``) checks that ``gguf.GGUFReader`` reads what this module
writes, so the valid files here are real GGUF.

Building blocks: ``gguf_string``, ``kv``, ``tensor_info``, ``header``; whole
files: ``build_gguf`` / ``write_gguf``, ``write_tiny_llama``, ``write_lora_adapter``.
Tensor data is zeros.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

# GGUF value types.
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32 = range(7)
BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(7, 13)
_FORMATS = {
    UINT8: "B",
    INT8: "b",
    UINT16: "H",
    INT16: "h",
    UINT32: "I",
    INT32: "i",
    FLOAT32: "f",
    BOOL: "?",
    UINT64: "Q",
    INT64: "q",
    FLOAT64: "d",
}

# ggml types used here: id -> (elements per block, bytes per block).
F32, F16, Q4_0, Q4_1, Q8_0 = 0, 1, 2, 3, 8
_BLOCKS = {F32: (1, 4), F16: (1, 2), Q4_0: (32, 18), Q4_1: (32, 20), Q8_0: (32, 34)}

SMOLLM2_SHAPES = {"hidden": 576, "ffn": 1536, "kv": 192}

TensorSpec = tuple[str, Sequence[int], int]  # name, shape (ggml order), ggml type


def gguf_string(text: str | bytes, declared_length: int | None = None) -> bytes:
    """A GGUF string; ``declared_length`` lets a hostile test lie about its length."""
    data = text.encode() if isinstance(text, str) else text
    length = len(data) if declared_length is None else declared_length
    return struct.pack("<Q", length) + data


def value_bytes(value_type: int, value: Any) -> bytes:
    """A metadata value. Arrays are ``(item_type, [items])``."""
    if value_type == STRING:
        return gguf_string(value)
    if value_type == ARRAY:
        item_type, items = value
        body = b"".join(value_bytes(item_type, item) for item in items)
        return struct.pack("<IQ", item_type, len(items)) + body
    return struct.pack("<" + _FORMATS[value_type], value)


def kv(key: str, value_type: int, value: Any) -> bytes:
    """One metadata key/value pair."""
    return gguf_string(key) + struct.pack("<I", value_type) + value_bytes(value_type, value)


def tensor_info(name: str, shape: Sequence[int], ggml_type: int, offset: int) -> bytes:
    """One tensor-table row (shape in ggml order)."""
    dims = struct.pack(f"<{len(shape)}Q", *shape) if shape else b""
    return (
        gguf_string(name)
        + struct.pack("<I", len(shape))
        + dims
        + struct.pack("<IQ", ggml_type, offset)
    )


def header(n_tensors: int, n_kv: int, *, version: int = 3, magic: bytes = b"GGUF") -> bytes:
    """Magic, version and the two counts."""
    return magic + struct.pack("<IQQ", version, n_tensors, n_kv)


def tensor_nbytes(shape: Sequence[int], ggml_type: int) -> int:
    block, size = _BLOCKS[ggml_type]
    n = 1
    for dim in shape:
        n *= dim
    return n // block * size


def _pad(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


def build_gguf(
    kvs: Iterable[bytes] = (),
    tensors: Iterable[TensorSpec] = (),
    *,
    version: int = 3,
    alignment: int = 32,
    with_data: bool = True,
) -> bytes:
    """A valid GGUF file: header, metadata, tensor table (offsets computed), padding, zero data."""
    kv_list = list(kvs)
    specs = list(tensors)
    rows = []
    offset = 0
    for name, shape, ggml_type in specs:
        rows.append(tensor_info(name, shape, ggml_type, offset))
        offset = _pad(offset + tensor_nbytes(shape, ggml_type), alignment)
    head = header(len(specs), len(kv_list), version=version) + b"".join(kv_list) + b"".join(rows)
    head += b"\0" * (_pad(len(head), alignment) - len(head))
    return head + (b"\0" * offset if with_data else b"")


def write_gguf(
    path: Path, kvs: Iterable[bytes] = (), tensors: Iterable[TensorSpec] = (), **kw: Any
) -> Path:
    path.write_bytes(build_gguf(kvs, tensors, **kw))
    return path


def tiny_llama_tensors(
    *, n_blocks: int, hidden: int, ffn: int, kv_dim: int, vocab: int, tied: bool, ggml_type: int
) -> list[TensorSpec]:
    """The tensor table of a llama decoder (norms stay F32, as llama.cpp writes them)."""
    specs: list[TensorSpec] = [("token_embd.weight", (hidden, vocab), ggml_type)]
    for i in range(n_blocks):
        blk = f"blk.{i}."
        specs += [
            (blk + "attn_norm.weight", (hidden,), F32),
            (blk + "attn_q.weight", (hidden, hidden), ggml_type),
            (blk + "attn_k.weight", (hidden, kv_dim), ggml_type),
            (blk + "attn_v.weight", (hidden, kv_dim), ggml_type),
            (blk + "attn_output.weight", (hidden, hidden), ggml_type),
            (blk + "ffn_norm.weight", (hidden,), F32),
            (blk + "ffn_gate.weight", (hidden, ffn), ggml_type),
            (blk + "ffn_up.weight", (hidden, ffn), ggml_type),
            (blk + "ffn_down.weight", (ffn, hidden), ggml_type),
        ]
    specs.append(("output_norm.weight", (hidden,), F32))
    if not tied:
        specs.append(("output.weight", (hidden, vocab), ggml_type))
    return specs


def write_tiny_llama(
    path: Path,
    *,
    n_blocks: int = 2,
    hidden: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    ffn: int = 128,
    vocab: int = 32,
    tied: bool = True,
    ggml_type: int = F32,
    name: str = "Tiny Llama",
    chat_template: str | None = "{% for m in messages %}{{ m.content }}{% endfor %}",
    extra_kvs: Iterable[bytes] = (),
) -> Path:
    """A small, self-consistent llama header with zero weights (for header-level tests only)."""
    kv_dim = hidden // n_heads * n_kv_heads
    kvs = [
        kv("general.architecture", STRING, "llama"),
        kv("general.type", STRING, "model"),
        kv("general.name", STRING, name),
        kv("general.license", STRING, "mit"),
        kv("llama.block_count", UINT32, n_blocks),
        kv("llama.context_length", UINT32, 2048),
        kv("llama.embedding_length", UINT32, hidden),
        kv("llama.feed_forward_length", UINT32, ffn),
        kv("llama.attention.head_count", UINT32, n_heads),
        kv("llama.attention.head_count_kv", UINT32, n_kv_heads),
        kv("llama.rope.freq_base", FLOAT32, 10000.0),
        kv("llama.attention.layer_norm_rms_epsilon", FLOAT32, 1e-5),
        kv("general.file_type", UINT32, 0 if ggml_type == F32 else ggml_type),
        kv("tokenizer.ggml.model", STRING, "gpt2"),
        kv("tokenizer.ggml.tokens", ARRAY, (STRING, [f"t{i}" for i in range(vocab)])),
        *extra_kvs,
    ]
    if chat_template is not None:
        kvs.append(kv("tokenizer.chat_template", STRING, chat_template))
    specs = tiny_llama_tensors(
        n_blocks=n_blocks,
        hidden=hidden,
        ffn=ffn,
        kv_dim=kv_dim,
        vocab=vocab,
        tied=tied,
        ggml_type=ggml_type,
    )
    return write_gguf(path, kvs, specs)


# (in_features, out_features) of each SmolLM2 projection a LoRA can target.
SMOLLM2_PROJECTIONS = {
    "attn_q": (576, 576),
    "attn_k": (576, 192),
    "attn_v": (576, 192),
    "attn_output": (576, 576),
    "ffn_gate": (576, 1536),
    "ffn_up": (576, 1536),
    "ffn_down": (1536, 576),
}


def write_lora_adapter(
    path: Path,
    *,
    rank: int = 4,
    alpha: float = 8.0,
    targets: Sequence[str] = ("attn_q", "attn_v"),
    n_blocks: int = 30,
    projections: dict[str, tuple[int, int]] | None = None,
    architecture: str = "llama",
) -> Path:
    """A LoRA adapter in llama.cpp's layout (zero weights, so it changes nothing when applied).

    ``blk.N.T.weight.lora_a`` has ggml shape (in, rank) and ``.lora_b`` (rank, out):
    the layout llama.cpp checks (``a.ne[1] == b.ne[0]``). Defaults fit SmolLM2-135M.
    """
    sizes = projections or SMOLLM2_PROJECTIONS
    kvs = [
        kv("general.architecture", STRING, architecture),
        kv("general.type", STRING, "adapter"),
        kv("general.name", STRING, "test adapter"),
        kv("adapter.type", STRING, "lora"),
        kv("adapter.lora.alpha", FLOAT32, alpha),
    ]
    specs: list[TensorSpec] = []
    for i in range(n_blocks):
        for target in targets:
            n_in, n_out = sizes[target]
            base = f"blk.{i}.{target}.weight"
            specs.append((base + ".lora_a", (n_in, rank), F32))
            specs.append((base + ".lora_b", (rank, n_out), F32))
    return write_gguf(path, kvs, specs)
