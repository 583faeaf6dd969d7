"""Rich renderables for ``models show``: the summary table and the decoder's anatomy tree.

They take the store's plain data (the summary dict, the :class:`Anatomy`
dataclasses), never an engine or a file. Every string from the model file is
untrusted: it is shown as ``Text`` (never parsed as markup) with control
characters replaced, so a hostile ``general.name`` cannot move the cursor.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from llmcli.store.anatomy import Anatomy, Norms, TensorGroup, TensorRole
from llmcli.units import format_bytes, format_count

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

LABELS: dict[str, str] = {
    "model": "Model",
    "name": "Name in file",
    "path": "Path",
    "source": "Source",
    "type": "Type",
    "adapter_type": "Adapter type",
    "architecture": "Architecture",
    "quantization": "Quantization",
    "parameters": "Parameters",
    "file_size": "File size",
    "context_length": "Context length (trained)",
    "block_count": "Decoder blocks",
    "embedding_length": "Embedding (hidden size)",
    "feed_forward_length": "Feed-forward (MLP) size",
    "head_count": "Attention heads",
    "head_count_kv": "KV heads",
    "head_dim": "Head dimension",
    "rope_freq_base": "RoPE base frequency",
    "rope_dimension_count": "RoPE dimensions",
    "rope_scaling": "RoPE scaling",
    "norm_epsilon": "Norm epsilon",
    "vocab_size": "Vocabulary size",
    "tokenizer_model": "Tokenizer",
    "tokenizer_pre": "Pre-tokenizer",
    "tied_embeddings": "LM head tied to embedding",
    "license": "License",
    "chat_template_sha256": "Chat template SHA-256",
    "lora_alpha": "LoRA alpha",
    "lora_rank": "LoRA rank",
    "target_tensors": "Target tensors",
    "gguf_version": "GGUF version",
    "tensor_count": "Tensors",
}


def safe_text(value: str) -> str:
    """``value`` with control characters (ESC, CSI, BEL...) replaced by U+FFFD."""
    return _CONTROL.sub("\ufffd", value)


def format_value(key: str, value: Any) -> str:
    """One summary value for people (``--json`` keeps the raw value)."""
    if key == "parameters" and isinstance(value, int):
        return f"{format_count(value)} ({value:,})"
    if key == "file_size" and isinstance(value, int):
        return f"{format_bytes(value)} ({value:,} bytes)"
    if key == "context_length" and isinstance(value, int):
        return f"{value:,} tokens"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() and abs(value) >= 1 else f"{value:g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(key, item) for item in value) or "-"
    return safe_text(str(value))


def summary_table(summary: Mapping[str, Any], *, title: str | None = None) -> Table:
    """Two columns, label and value; rows with unknown (None) values are left out."""
    table = Table(
        title=safe_text(title) if title else None,
        show_header=False,
        box=None,
        pad_edge=False,
        padding=(0, 2, 0, 0),
    )
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in summary.items():
        if value is None:
            continue
        table.add_row(Text(LABELS.get(key, key)), Text(format_value(key, value)))
    return table


def summary_lines(summary: Mapping[str, Any]) -> list[str]:
    """The summary as 'Label: value' lines, for pipes: no wrapping, easy to grep."""
    rows = [(LABELS.get(k, k), format_value(k, v)) for k, v in summary.items() if v is not None]
    width = max((len(label) for label, _ in rows), default=0) + 1
    return [f"{label + ':':<{width}} {value}" for label, value in rows]


def _num(value: int | None) -> str:
    return f"{value:,}" if value is not None else "?"


def _shape(role: TensorRole, *, table: bool = False) -> str:
    """ggml shapes are (in, out, ...): projections read 'in → out', a lookup table 'rows × cols'."""
    dims = role.shape
    if len(dims) == 2 and not table:
        return f"{dims[0]:,} → {dims[1]:,}"
    return " × ".join(f"{d:,}" for d in reversed(dims)) or "scalar"


def _params(group: TensorGroup) -> str:
    quant = "/".join(group.quant) or "-"
    return f"{format_count(group.parameters)} params · {quant}"


def _stage(label: str, detail: str, group: TensorGroup | None = None) -> Text:
    text = Text(label, style="bold")
    if detail:
        text.append("  " + safe_text(detail))
    if group is not None:
        text.append("  " + _params(group), style="dim")
    return text


def _add_roles(node: Tree, group: TensorGroup, *, table: bool = False) -> None:
    for role in group.roles:
        times = f" ×{role.count}" if role.count > 1 else ""
        line = Text(safe_text(role.name), style="cyan")
        line.append(f"  {_shape(role, table=table)}{times}  ")
        line.append(f"{format_count(role.parameters)} · {role.quant}", style="dim")
        node.add(line)


def _norm_detail(norms: Norms) -> str:
    eps = f" ε={norms.epsilon:g}" if norms.epsilon is not None else ""
    return f"{norms.kind}{eps}"


def _attention_detail(anatomy: Anatomy) -> str:
    att = anatomy.blocks.attention
    parts = []
    if att.n_heads is not None:
        parts.append(f"{att.n_heads} heads")
    if att.n_kv_heads is not None:
        gqa = f" (grouped-query, {att.gqa_ratio} per KV head)" if (att.gqa_ratio or 1) > 1 else ""
        parts.append(f"{att.n_kv_heads} KV heads{gqa}")
    if att.head_dim is not None:
        parts.append(f"head dim {att.head_dim}")
    base = f"{att.rope_freq_base:,.0f}" if att.rope_freq_base is not None else "default"
    rope = f"RoPE base {base}"
    if att.rope_dimensions is not None:
        rope += f" on {att.rope_dimensions} dims"
    if att.rope_scaling and att.rope_scaling != "none":
        rope += f", {att.rope_scaling} scaling"
    parts.append(rope)
    return ", ".join(parts)


def _mlp_detail(anatomy: Anatomy) -> str:
    mlp = anatomy.blocks.mlp
    detail = ""
    if mlp.hidden_size and mlp.ffn_size:
        detail = f"{mlp.hidden_size:,} → {mlp.ffn_size:,} → {mlp.hidden_size:,}"
    if mlp.n_experts:
        used = f", {mlp.n_experts_used} used per token" if mlp.n_experts_used else ""
        detail += f" ({mlp.n_experts} experts{used})"
    return detail


def anatomy_tree(anatomy: Anatomy, *, title: str | None = None) -> Tree:
    """embedding → N × decoder block (attention, MLP, norms) → output norm → LM head."""
    heading = Text(safe_text(title or anatomy.architecture or "model"), style="bold")
    heading.append(f"  {format_count(anatomy.total_parameters)} parameters", style="dim")
    tree = Tree(heading)

    emb = anatomy.embedding
    size = f"{_num(emb.vocab_size)} tokens × {_num(emb.hidden_size)}"
    _add_roles(tree.add(_stage("Token embedding", size, emb.weights)), emb.weights, table=True)

    blocks = anatomy.blocks
    block_head = Text(f"{blocks.count} × decoder block", style="bold")
    block_head.append(f"  {format_count(blocks.parameters)} params", style="dim")
    node = tree.add(block_head)
    att = blocks.attention.weights
    _add_roles(node.add(_stage("Attention", _attention_detail(anatomy), att)), att)
    mlp = blocks.mlp.weights
    _add_roles(node.add(_stage("MLP", _mlp_detail(anatomy), mlp)), mlp)
    norms = blocks.norms
    _add_roles(node.add(_stage("Norms", _norm_detail(norms), norms.weights)), norms.weights)
    if blocks.other.roles:
        _add_roles(node.add(_stage("Other", "", blocks.other)), blocks.other)

    out = anatomy.output_norm
    tree.add(_stage("Output norm", _norm_detail(out), out.weights))
    head = anatomy.lm_head
    logits = f"{_num(head.hidden_size)} → {_num(head.vocab_size)} logits"
    if head.tied:
        tree.add(_stage("LM head", f"{logits}, tied to the token embedding (no extra parameters)"))
    else:
        _add_roles(tree.add(_stage("LM head", logits, head.weights)), head.weights)
    if anatomy.other.roles:
        _add_roles(tree.add(_stage("Other tensors", "", anatomy.other)), anatomy.other)
    return tree
