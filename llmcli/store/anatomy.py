"""The decoder's anatomy, read from a GGUF header: the lecture's stages made concrete.

A prompt is tokenized, each token id becomes a row of the **token embedding**
(vocab x hidden), the hidden vector goes through **N decoder blocks** (attention
with RoPE, then an MLP, each behind a norm), a final **output norm**, and the
**LM head** projects back to vocabulary logits. Every tensor of the file lands
in exactly one of those parts, so the parts always add up to the file's
parameter count; ``models show --anatomy`` draws this, ``--json`` dumps it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from llmcli.store.gguf_header import GGUFFile, TensorInfo

_BLOCK_TENSOR = re.compile(r"^blk\.(\d+)\.(.+)$")


@dataclass(frozen=True)
class TensorRole:
    """One kind of tensor (e.g. ``attn_q.weight``), summed over every block that has it."""

    name: str
    shape: tuple[int, ...]  # ggml order, as in the first block that has it
    count: int  # how many blocks (1 outside the blocks)
    parameters: int
    quant: str  # the type holding most of its parameters


@dataclass(frozen=True)
class TensorGroup:
    """The parameters of one part of the decoder."""

    roles: tuple[TensorRole, ...] = ()

    @property
    def parameters(self) -> int:
        return sum(role.parameters for role in self.roles)

    @property
    def quant(self) -> tuple[str, ...]:
        """Distinct tensor types, the one holding most parameters first."""
        weights: Counter[str] = Counter()
        for role in self.roles:
            weights[role.quant] += role.parameters
        return tuple(name for name, _ in weights.most_common())


@dataclass(frozen=True)
class Embedding:
    vocab_size: int | None
    hidden_size: int | None
    weights: TensorGroup


@dataclass(frozen=True)
class Attention:
    n_heads: int | None
    n_kv_heads: int | None
    gqa_ratio: int | None  # query heads per key/value head (1 = plain multi-head)
    head_dim: int | None
    rope_freq_base: float | None  # None: llama.cpp's default (10000)
    rope_dimensions: int | None
    rope_scaling: str | None
    weights: TensorGroup


@dataclass(frozen=True)
class Mlp:
    hidden_size: int | None
    ffn_size: int | None  # gate/up project hidden -> ffn, down projects back
    n_experts: int | None
    n_experts_used: int | None
    weights: TensorGroup


@dataclass(frozen=True)
class Norms:
    kind: str  # "RMSNorm" or "LayerNorm"
    epsilon: float | None
    weights: TensorGroup


@dataclass(frozen=True)
class DecoderBlocks:
    count: int
    attention: Attention
    mlp: Mlp
    norms: Norms
    other: TensorGroup  # per-block tensors that are neither attention, MLP nor norm

    @property
    def parameters(self) -> int:
        return (
            self.attention.weights.parameters
            + self.mlp.weights.parameters
            + self.norms.weights.parameters
            + self.other.parameters
        )


@dataclass(frozen=True)
class LmHead:
    vocab_size: int | None
    hidden_size: int | None
    tied: bool  # True: reuses the token embedding matrix (no output.weight tensor)
    weights: TensorGroup


@dataclass(frozen=True)
class Anatomy:
    architecture: str | None
    embedding: Embedding
    blocks: DecoderBlocks
    output_norm: Norms
    lm_head: LmHead
    other: TensorGroup  # tensors outside the stages (e.g. rope_freqs.weight)
    total_parameters: int = field(default=0)

    def components(self) -> dict[str, int]:
        """Parameters per stage; the values sum to ``total_parameters``."""
        return {
            "embedding": self.embedding.weights.parameters,
            "attention": self.blocks.attention.weights.parameters,
            "mlp": self.blocks.mlp.weights.parameters,
            "block_norms": self.blocks.norms.weights.parameters,
            "block_other": self.blocks.other.parameters,
            "output_norm": self.output_norm.weights.parameters,
            "lm_head": self.lm_head.weights.parameters,
            "other": self.other.parameters,
        }


def build_anatomy(gguf: GGUFFile) -> Anatomy:
    """Sort every tensor of ``gguf`` into the decoder stage it belongs to."""
    buckets = _bucket_tensors(gguf.tensors)
    hidden = _hidden_size(gguf)
    vocab = _vocab_size(gguf)
    eps, kind = _norm_epsilon(gguf)
    n_blocks = gguf.block_count
    if n_blocks is None:
        n_blocks = len({m.group(1) for t in gguf.tensors if (m := _BLOCK_TENSOR.match(t.name))})
    blocks = DecoderBlocks(
        count=n_blocks,
        attention=_attention(gguf, hidden, _group(buckets["attention"])),
        mlp=Mlp(
            hidden_size=hidden,
            ffn_size=_ffn_size(gguf, buckets["mlp"]),
            n_experts=_first_int(gguf.arch_value("expert_count")),
            n_experts_used=_first_int(gguf.arch_value("expert_used_count")),
            weights=_group(buckets["mlp"]),
        ),
        norms=Norms(kind=kind, epsilon=eps, weights=_group(buckets["block_norms"])),
        other=_group(buckets["block_other"]),
    )
    return Anatomy(
        architecture=gguf.architecture,
        embedding=Embedding(vocab, hidden, _group(buckets["embedding"])),
        blocks=blocks,
        output_norm=Norms(kind=kind, epsilon=eps, weights=_group(buckets["output_norm"])),
        lm_head=LmHead(
            vocab_size=vocab,
            hidden_size=hidden,
            tied=not buckets["lm_head"],
            weights=_group(buckets["lm_head"]),
        ),
        other=_group(buckets["other"]),
        total_parameters=gguf.parameter_count,
    )


def _stage_of(name: str) -> tuple[str, str]:
    """(stage, role) of a tensor name in llama.cpp's naming (``blk.N.attn_q.weight``...)."""
    match = _BLOCK_TENSOR.match(name)
    if match:
        role = match.group(2)
        if "norm" in role.split(".")[0]:
            return "block_norms", role
        if role.startswith("attn_"):
            return "attention", role
        if role.startswith("ffn_"):
            return "mlp", role
        return "block_other", role
    stem = name.split(".")[0]
    if stem.startswith(("token_embd", "position_embd", "token_types")):
        return "embedding", name
    if stem == "output_norm":
        return "output_norm", name
    if stem == "output":
        return "lm_head", name
    return "other", name


_STAGES = (
    "embedding",
    "attention",
    "mlp",
    "block_norms",
    "block_other",
    "output_norm",
    "lm_head",
    "other",
)


def _bucket_tensors(tensors: Iterable[TensorInfo]) -> dict[str, dict[str, list[TensorInfo]]]:
    buckets: dict[str, dict[str, list[TensorInfo]]] = {stage: {} for stage in _STAGES}
    for tensor in tensors:
        stage, role = _stage_of(tensor.name)
        buckets[stage].setdefault(role, []).append(tensor)
    return buckets


# The lecture's order inside a block: query, key, value, output; then gate, up, down.
_ROLE_ORDER = (
    "attn_norm",
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_qkv",
    "attn_output",
    "ffn_norm",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
)


def _role_rank(name: str) -> int:
    stem = name.split(".")[0]
    return _ROLE_ORDER.index(stem) if stem in _ROLE_ORDER else len(_ROLE_ORDER)


def _group(roles: dict[str, list[TensorInfo]]) -> TensorGroup:
    ordered = sorted(roles.items(), key=lambda item: _role_rank(item[0]))  # stable: file order
    return TensorGroup(tuple(_role(name, tensors) for name, tensors in ordered))


def _role(name: str, tensors: list[TensorInfo]) -> TensorRole:
    weights: Counter[str] = Counter()
    for tensor in tensors:
        weights[tensor.type_name] += tensor.n_elements
    return TensorRole(
        name=name,
        shape=tensors[0].shape,
        count=len(tensors),
        parameters=sum(weights.values()),
        quant=weights.most_common(1)[0][0],
    )


def _first_int(value: Any) -> int | None:
    """An integer hyperparameter; per-layer arrays (OpenELM...) give their largest value."""
    if isinstance(value, list):
        ints = [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
        return max(ints) if ints else None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _find(gguf: GGUFFile, name: str) -> TensorInfo | None:
    return next((t for t in gguf.tensors if t.name == name), None)


def _hidden_size(gguf: GGUFFile) -> int | None:
    hidden = _first_int(gguf.arch_value("embedding_length"))
    if hidden is None and (embd := _find(gguf, "token_embd.weight")) is not None:
        hidden = embd.shape[0]
    return hidden


def _vocab_size(gguf: GGUFFile) -> int | None:
    tokens = gguf.metadata.get("tokenizer.ggml.tokens")
    if isinstance(tokens, list) and tokens:
        return len(tokens)
    vocab = _first_int(gguf.arch_value("vocab_size"))
    embd = _find(gguf, "token_embd.weight")
    if vocab is None and embd is not None and len(embd.shape) == 2:
        vocab = embd.shape[1]
    return vocab


def _norm_epsilon(gguf: GGUFFile) -> tuple[float | None, str]:
    rms = _float(gguf.arch_value("attention.layer_norm_rms_epsilon"))
    if rms is not None:
        return rms, "RMSNorm"
    layer = _float(gguf.arch_value("attention.layer_norm_epsilon"))
    if layer is not None:
        return layer, "LayerNorm"
    return None, "RMSNorm"


def _attention(gguf: GGUFFile, hidden: int | None, weights: TensorGroup) -> Attention:
    n_heads = _first_int(gguf.arch_value("attention.head_count"))
    n_kv = _first_int(gguf.arch_value("attention.head_count_kv"))
    if n_kv is None:
        n_kv = n_heads
    head_dim = _first_int(gguf.arch_value("attention.key_length"))
    if head_dim is None and hidden and n_heads:
        head_dim = hidden // n_heads
    ratio = n_heads // n_kv if n_heads and n_kv and n_heads % n_kv == 0 else None
    rope_dims = _first_int(gguf.arch_value("rope.dimension_count"))
    scaling = gguf.arch_value("rope.scaling.type")
    return Attention(
        n_heads=n_heads,
        n_kv_heads=n_kv,
        gqa_ratio=ratio,
        head_dim=head_dim,
        rope_freq_base=_float(gguf.arch_value("rope.freq_base")),
        rope_dimensions=rope_dims if rope_dims is not None else head_dim,
        rope_scaling=scaling if isinstance(scaling, str) else None,
        weights=weights,
    )


def _ffn_size(gguf: GGUFFile, mlp: dict[str, list[TensorInfo]]) -> int | None:
    ffn = _first_int(gguf.arch_value("feed_forward_length"))
    if ffn is None and (ups := mlp.get("ffn_up.weight")):
        ffn = ups[0].shape[1] if len(ups[0].shape) >= 2 else None
    return ffn


def as_dict(anatomy: Anatomy) -> dict[str, Any]:
    """A JSON-ready dict of the anatomy, with each group's parameter total and types."""
    result = _plain(anatomy)
    assert isinstance(result, dict)
    result["components"] = anatomy.components()
    return result


def _plain(value: Any) -> Any:
    if isinstance(value, TensorGroup):
        return {
            "parameters": value.parameters,
            "quant": list(value.quant),
            "tensors": [_plain(role) for role in value.roles],
        }
    if hasattr(value, "__dataclass_fields__"):
        return {name: _plain(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value
