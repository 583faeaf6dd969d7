"""Tiny GGUF models that llama.cpp really loads (or really aborts on), built in a few ms.

* :func:`byte_level_llama`: a one-block llama with zero weights and a GPT-2 byte-level
  vocabulary of the 256 byte characters, so any text tokenizes and generation runs;
  its chat template is whatever the test needs (a hostile one, typically).
* :func:`aborting_llama`: passes llmcli's header check, but llama.cpp fails a
  ``GGML_ASSERT`` while loading it and calls ``abort()`` (SIGABRT): 1,000 experts
  declared for a dense llama.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tests import gguf_factory as gf

HIDDEN, FFN, HEADS, KV_HEADS = 64, 128, 4, 2


def byte_characters() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes, in byte order (its bytes_to_unicode)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars = {b: b for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + extra
            extra += 1
    return [chr(chars[b]) for b in range(256)]


def _llama_kvs(vocab: list[str], extra: Iterable[bytes]) -> list[bytes]:
    return [
        gf.kv("general.architecture", gf.STRING, "llama"),
        gf.kv("general.type", gf.STRING, "model"),
        gf.kv("general.name", gf.STRING, "Tiny Test Llama"),
        gf.kv("llama.block_count", gf.UINT32, 1),
        gf.kv("llama.context_length", gf.UINT32, 512),
        gf.kv("llama.embedding_length", gf.UINT32, HIDDEN),
        gf.kv("llama.feed_forward_length", gf.UINT32, FFN),
        gf.kv("llama.attention.head_count", gf.UINT32, HEADS),
        gf.kv("llama.attention.head_count_kv", gf.UINT32, KV_HEADS),
        gf.kv("llama.rope.freq_base", gf.FLOAT32, 10000.0),
        gf.kv("llama.attention.layer_norm_rms_epsilon", gf.FLOAT32, 1e-5),
        gf.kv("tokenizer.ggml.model", gf.STRING, "gpt2"),
        gf.kv("tokenizer.ggml.tokens", gf.ARRAY, (gf.STRING, vocab)),
        gf.kv("tokenizer.ggml.merges", gf.ARRAY, (gf.STRING, ["Ġ Ġ"])),
        *extra,
    ]


def _write(path: Path, vocab: list[str], extra: Iterable[bytes]) -> Path:
    specs = gf.tiny_llama_tensors(
        n_blocks=1,
        hidden=HIDDEN,
        ffn=FFN,
        kv_dim=HIDDEN // HEADS * KV_HEADS,
        vocab=len(vocab),
        tied=True,
        ggml_type=gf.F32,
    )
    return gf.write_gguf(path, _llama_kvs(vocab, extra), specs)


def byte_level_llama(path: Path, *, chat_template: str | None) -> Path:
    extra = (
        []
        if chat_template is None
        else [gf.kv("tokenizer.chat_template", gf.STRING, chat_template)]
    )
    return _write(path, byte_characters(), extra)


def aborting_llama(path: Path) -> Path:
    return _write(path, byte_characters(), [gf.kv("llama.expert_count", gf.UINT32, 1000)])


I32 = 26  # ggml's GGML_TYPE_I32


def decode_aborting_llama(path: Path) -> Path:
    """Passes the header check and loads, but ``blk.0.attn_norm.weight`` is I32 where the
    norm's multiply needs F32: llama.cpp aborts (``binary_op: unsupported types``) at the
    first decode."""
    specs = [
        (name, shape, I32 if name == "blk.0.attn_norm.weight" else ggml_type)
        for name, shape, ggml_type in gf.tiny_llama_tensors(
            n_blocks=1,
            hidden=HIDDEN,
            ffn=FFN,
            kv_dim=HIDDEN // HEADS * KV_HEADS,
            vocab=256,
            tied=True,
            ggml_type=gf.F32,
        )
    ]
    # Same element size as F32, so the data layout the factory computes stays right.
    specs = [(n, s, gf.F32 if t == I32 else t) for n, s, t in specs]
    data = bytearray(gf.build_gguf(_llama_kvs(byte_characters(), []), specs))
    _retype(data, b"blk.0.attn_norm.weight", I32)
    path.write_bytes(bytes(data))
    return path


def _retype(data: bytearray, name: bytes, ggml_type: int) -> None:
    """Rewrite one tensor's type in its table row (name, n_dims, dims, type, offset)."""
    import struct

    at = data.index(struct.pack("<Q", len(name)) + name) + 8 + len(name)
    n_dims = struct.unpack_from("<I", data, at)[0]
    type_at = at + 4 + 8 * n_dims
    struct.pack_into("<I", data, type_at, ggml_type)
