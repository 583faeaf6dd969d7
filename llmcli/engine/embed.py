"""Pooled embedding vectors: one vector per text, from a local model or a server.

Locally, a side context is created with ``embeddings=True`` and the chosen pooling
(llama.cpp pools the last block's normalized hidden states over the sequence):

* ``mean``: the average over all tokens, the usual choice for decoder models;
* ``last``: the last token's state, the only one that has seen the whole text in a
  causal decoder;
* ``cls``: the first token's state (BERT's [CLS]; for a decoder it is the BOS token,
  which has seen nothing: identical for every text).

Texts are evaluated one at a time (the cache is cleared in between), so no text's
pooling can see another's tokens. Remote servers get ``POST /v1/embeddings``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from llmcli.engine.native import SideContextSpec, side_context
from llmcli.errors import DataError, ServiceUnavailable

POOLINGS = ("mean", "last", "cls")


def _pooling_type(lib: Any, pooling: str) -> int:
    return int(
        {
            "mean": lib.LLAMA_POOLING_TYPE_MEAN,
            "last": lib.LLAMA_POOLING_TYPE_LAST,
            "cls": lib.LLAMA_POOLING_TYPE_CLS,
        }[pooling]
    )


def l2_normalize(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def local_embeddings(
    engine: Any, prompts: Sequence[Sequence[int]], *, pooling: str
) -> list[np.ndarray]:
    """One pooled vector per token sequence, with the engine's model (a LlamaEngine)."""
    longest = max((len(p) for p in prompts), default=1)
    spec = SideContextSpec(
        n_ctx=longest,
        threads=engine.threads,
        embeddings=True,
        pooling=_pooling_type(engine.native_lib, pooling),
    )
    vectors = []
    with side_context(engine, spec) as ctx:
        for ids in prompts:
            if not ids:
                raise DataError("a text has no tokens", hint="give non-empty texts")
            ctx.clear()
            ctx.decode(ids, outputs="all")
            vectors.append(ctx.pooled_embedding())
    return vectors


class LocalEmbeddings:
    """The :class:`~llmcli.engine.base.Embeddings` capability of a loaded llama.cpp model."""

    poolings: tuple[str, ...] = POOLINGS

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def embed(self, texts: Sequence[str], *, pooling: str) -> list[np.ndarray]:
        prompts = [self._engine.tokenize(text, add_bos=True) for text in texts]
        longest = max((len(p) for p in prompts), default=0)
        if longest > self._engine.n_ctx:
            raise DataError(
                f"a text is {longest} tokens but the context holds {self._engine.n_ctx}",
                hint="shorten it or raise --ctx",
            )
        return local_embeddings(self._engine, prompts, pooling=pooling)


class RemoteEmbeddings:
    """The capability of an OpenAI-compatible server: ``POST /v1/embeddings``."""

    poolings: tuple[str, ...] = ()

    def __init__(self, http: Any, model: str, with_retries: Any) -> None:
        self._http, self._model, self._with_retries = http, model, with_retries

    def embed(self, texts: Sequence[str], *, pooling: str) -> list[np.ndarray]:
        result: list[np.ndarray] = self._with_retries(
            lambda: remote_embeddings(self._http, self._model, texts)
        )
        return result


def remote_embeddings(http: Any, model: str, texts: Sequence[str]) -> list[np.ndarray]:
    """``POST /v1/embeddings`` with every text at once; vectors in input order."""
    data = http.post_json("embeddings", {"model": model, "input": list(texts)})
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list) or len(entries) != len(texts):
        raise ServiceUnavailable(
            f"{http.url('embeddings')} did not return {len(texts)} embeddings",
            hint="check that the server serves an embedding model (llama-server --embeddings)",
        )
    ordered = sorted(entries, key=lambda e: e.get("index", 0) if isinstance(e, dict) else 0)
    vectors = []
    for entry in ordered:
        vector = entry.get("embedding") if isinstance(entry, dict) else None
        if not isinstance(vector, list) or not vector:
            raise ServiceUnavailable(
                f"{http.url('embeddings')} returned an entry without an embedding",
                hint="check the server's /v1/embeddings answer",
            )
        vectors.append(np.asarray(vector, dtype=np.float64))
    return vectors


def cosine_matrix(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """Cosine similarity of every pair (1.0 on the diagonal for non-zero vectors)."""
    if not vectors:
        return np.zeros((0, 0))
    stacked = np.stack([l2_normalize(v) for v in vectors])
    result: np.ndarray = np.clip(stacked @ stacked.T, -1.0, 1.0)
    return result
