"""A model file's one-screen summary (``models show``): architecture, sizes, tokenizer.

Read from the GGUF header alone; the decoder's anatomy is :mod:`llmcli.store.anatomy`.
"""

from __future__ import annotations

from typing import Any

from llmcli.store.anatomy import _BLOCK_TENSOR, _float, build_anatomy
from llmcli.store.gguf_header import GGUFFile


def summary(gguf: GGUFFile) -> dict[str, Any]:
    """The facts ``models show`` prints (and ``--json`` emits), in display order."""
    if gguf.is_lora_adapter:
        return _adapter_summary(gguf)
    anatomy = build_anatomy(gguf)
    attention = anatomy.blocks.attention
    meta = gguf.metadata
    return {
        "name": gguf.name,
        "path": str(gguf.path),
        "type": "model",
        "architecture": gguf.architecture,
        "quantization": gguf.file_type_name,
        "parameters": gguf.parameter_count,
        "file_size": gguf.file_size,
        "context_length": gguf.context_length,
        "block_count": anatomy.blocks.count,
        "embedding_length": anatomy.embedding.hidden_size,
        "feed_forward_length": anatomy.blocks.mlp.ffn_size,
        "head_count": attention.n_heads,
        "head_count_kv": attention.n_kv_heads,
        "head_dim": attention.head_dim,
        "rope_freq_base": attention.rope_freq_base,
        "rope_dimension_count": attention.rope_dimensions,
        "rope_scaling": attention.rope_scaling,
        "norm_epsilon": anatomy.blocks.norms.epsilon,
        "vocab_size": anatomy.embedding.vocab_size,
        "tokenizer_model": _str(meta.get("tokenizer.ggml.model")),
        "tokenizer_pre": _str(meta.get("tokenizer.ggml.pre")),
        "tied_embeddings": anatomy.lm_head.tied,
        "license": _str(meta.get("general.license")),
        "chat_template_sha256": gguf.template_sha256,
        "gguf_version": gguf.version,
        "tensor_count": len(gguf.tensors),
    }


def _adapter_summary(gguf: GGUFFile) -> dict[str, Any]:
    ranks = sorted(
        {t.shape[1] for t in gguf.tensors if t.name.endswith(".lora_a") and len(t.shape) >= 2}
    )
    targets = sorted(
        {
            _BLOCK_TENSOR.sub(r"blk.*.\2", t.name.removesuffix(".lora_a"))
            for t in gguf.tensors
            if t.name.endswith(".lora_a")
        }
    )
    return {
        "name": gguf.name,
        "path": str(gguf.path),
        "type": "adapter",
        "adapter_type": _str(gguf.metadata.get("adapter.type")),
        "architecture": gguf.architecture,
        "lora_alpha": _float(gguf.metadata.get("adapter.lora.alpha")),
        "lora_rank": ranks[0] if len(ranks) == 1 else (ranks or None),
        "target_tensors": targets,
        "parameters": gguf.parameter_count,
        "file_size": gguf.file_size,
        "gguf_version": gguf.version,
        "tensor_count": len(gguf.tensors),
    }


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
