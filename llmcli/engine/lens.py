"""The logit lens: what the model would predict if it stopped after decoder block N.

One forward pass runs on a side context whose evaluation callback (``cb_eval``)
watches for the per-block outputs of llama.cpp's graph, the residual stream after
each block (``l_out-0`` … ``l_out-{n-1}``). In the callback's *ask* phase only those
tensors are requested, so the scheduler still runs the graph in large pieces; in the
*observe* phase only the last token's row is copied out (``n_embd`` floats).

Each row then goes through the model's own output norm and LM head
(read by :mod:`llmcli.store.lens_weights`). The last block's row is the model's actual
prediction: for it the logits llama.cpp computed are used, so the lens's last row
is exactly ``next``'s distribution; how far the dequantized norm + head lands from
them is kept as :attr:`LensResult.final_max_deviation` (quantized matmul on one side,
float32 on the other: small, not zero).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from llmcli.engine.native import SideContextSpec, last_row, side_context, tensor_name
from llmcli.errors import DataError

LAYER_OUTPUT = re.compile(r"l_out-(\d+)$")
"""llama.cpp names each block's output ``l_out-N`` (llama-graph ``cb(cur, "l_out", il)``)."""


class OutputHead(Protocol):
    """The model's output norm and LM head as float arrays (``store.lens_weights`` reads them)."""

    @property
    def norm_kind(self) -> str: ...  # "rms" or "layer"

    @property
    def epsilon(self) -> float: ...

    @property
    def norm_weight(self) -> np.ndarray: ...

    @property
    def norm_bias(self) -> np.ndarray | None: ...

    @property
    def head(self) -> np.ndarray: ...  # (n_vocab, n_embd)


@dataclass(frozen=True)
class LensRow:
    """One decoder block's prediction at the last position."""

    layer: int  # 0-based block index
    top: tuple[tuple[int, float], ...]  # (token id, log-probability), most likely first
    final_rank: int  # rank (1 = top) of the model's final prediction in this distribution
    final_logprob: float  # its log-probability here
    from_llama: bool = False  # the model's own logits (the last block)


@dataclass(frozen=True)
class LensResult:
    rows: tuple[LensRow, ...]
    final_token: int
    final_max_deviation: float  # max |logit| gap of our norm + head vs llama.cpp, last block


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max()
    result: np.ndarray = shifted - np.log(np.exp(shifted).sum())
    return result


def project(weights: OutputHead, hidden: np.ndarray) -> np.ndarray:
    """Output norm then LM head: a hidden state (n_embd) to logits (n_vocab), float64."""
    h = hidden.astype(np.float64)
    if weights.norm_kind == "rms":
        normed = h / np.sqrt(np.mean(h * h) + weights.epsilon)
    else:
        centred = h - h.mean()
        normed = centred / np.sqrt(np.mean(centred * centred) + weights.epsilon)
    normed = normed * weights.norm_weight
    if weights.norm_bias is not None:
        normed = normed + weights.norm_bias
    logits: np.ndarray = weights.head @ normed.astype(np.float32)
    return logits.astype(np.float64)


def top_ids(logprobs: np.ndarray, k: int) -> list[int]:
    """The ``k`` most likely ids, most likely first; ties: lower id first (as argmax)."""
    k = min(k, logprobs.shape[0])
    ids = np.argpartition(-logprobs, k - 1)[:k]
    ordered = ids[np.lexsort((ids, -logprobs[ids]))]
    return [int(i) for i in ordered]


class _Collector:
    """The evaluation callback: ask for ``l_out-N`` only, keep the last token's row."""

    def __init__(self) -> None:
        self.rows: dict[int, np.ndarray] = {}

    def __call__(self, tensor: int, ask: bool) -> bool:
        match = LAYER_OUTPUT.match(tensor_name(tensor))
        if ask:
            return match is not None
        if match is not None:
            row = last_row(tensor)
            if row is not None:  # several ubatches: the last one holds the last token
                self.rows[int(match.group(1))] = row
        return True  # keep computing


def residual_stream(engine: Any, prompt: Sequence[int]) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Per-block hidden states at the last position, and llama.cpp's final logits."""
    collector = _Collector()
    spec = SideContextSpec(n_ctx=len(prompt), threads=engine.threads, eval_callback=collector)
    with side_context(engine, spec) as ctx:
        ctx.decode(prompt)
        logits = ctx.last_logits()
    if not collector.rows:
        raise DataError(
            "llama.cpp's graph for this model has no per-block outputs named l_out-N",
            hint="the lens supports llama-style decoders; check 'llmcli models show --anatomy'",
        )
    return collector.rows, logits


def logit_lens(engine: Any, prompt: Sequence[int], weights: OutputHead, *, top: int) -> LensResult:
    """Run the prompt once and read every block's prediction for the next token."""
    rows, final_logits = residual_stream(engine, prompt)
    final_lp = log_softmax(final_logits)
    final_token = top_ids(final_lp, 1)[0]
    last = max(rows)
    deviation = float(np.max(np.abs(project(weights, rows[last]) - final_logits)))
    result = []
    for layer in sorted(rows):
        own = layer == last
        lp = final_lp if own else log_softmax(project(weights, rows[layer]))
        best = top_ids(lp, top)
        rank = int(np.sum(lp > lp[final_token])) + 1
        result.append(
            LensRow(
                layer=layer,
                top=tuple((i, float(lp[i])) for i in best),
                final_rank=rank,
                final_logprob=float(lp[final_token]),
                from_llama=own,
            )
        )
    return LensResult(tuple(result), final_token, deviation)
