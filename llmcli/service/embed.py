"""``embed`` without the terminal: vectors for texts, their token counts, the pooling used.

The command validates its flags, loads the engine with
:func:`llmcli.service.engines.load_embeddings` (which chooses local in-process or a
server) and renders what :func:`embed_texts` returns: the similarity matrix, or the
vectors as JSON. numpy and the engine's embedding code are imported when called, so
``llmcli --help`` stays light.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmcli.engine.base import Embeddings, Engine

if TYPE_CHECKING:
    import numpy as np

SERVER_POOLING = "server"
"""The pooling reported when the server pools as it likes (it takes no ``pooling``)."""


@dataclass(frozen=True)
class Embedded:
    vectors: list[np.ndarray]
    token_counts: list[int | None]
    """Tokens per text as the model counts them; ``None`` where the engine has no tokenizer."""
    pooling: str
    """The pooling asked for, or :data:`SERVER_POOLING`."""
    normalized: bool


def embed_texts(
    engine: Engine,
    capability: Embeddings,
    texts: Sequence[str],
    *,
    pooling: str,
    normalize: bool,
) -> Embedded:
    """One vector per text in input order (unit length with ``normalize``)."""
    vectors = capability.embed(texts, pooling=pooling)
    if pooling in capability.poolings:
        tokens = engine.token_level()
        counts: list[int | None] = [
            len(tokens.tokenize(text, add_bos=True)) if tokens is not None else None
            for text in texts
        ]
        used = pooling
    else:
        counts, used = [None] * len(texts), SERVER_POOLING
    if normalize:
        from llmcli.engine.embed import l2_normalize

        vectors = [l2_normalize(v) for v in vectors]
    return Embedded(vectors, counts, used, normalize)
