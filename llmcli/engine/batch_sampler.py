"""The sampler chain of one batched sequence, built as ``Llama.generate`` builds it.

An item answered in a batch must give the answer it gives alone with the same seed,
so its chain repeats llama-cpp-python's: penalties over the last 64 tokens, the
grammar (``--schema``/``--json-object``/``--grammar``) where ``Llama.generate`` puts
it, then greedy, or top-k, typical, top-p, min-p, temperature and the seeded
distribution.
"""

from __future__ import annotations

import random
from typing import Any

from llmcli.engine.base import Sampling

PENALTY_LAST_N = 64
"""llama-cpp-python's ``last_n_tokens_size`` default, which ``Llama.generate`` uses."""


def sampler_chain(engine: Any, sampling: Sampling) -> Any:
    """A new ``llama_sampler`` chain for ``sampling`` on ``engine``'s vocabulary (caller frees)."""
    lib = engine.native_lib
    chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())

    def add(sampler: Any) -> None:
        lib.llama_sampler_chain_add(chain, sampler)

    add(
        lib.llama_sampler_init_penalties(
            engine.n_vocab,
            PENALTY_LAST_N,
            sampling.repeat_penalty,
            0.0,
            sampling.presence_penalty,
        )
    )
    grammar = engine.grammar_for(sampling)  # compiled and checked once, cached
    if grammar:
        add(lib.llama_sampler_init_grammar(engine._vocab, grammar.encode(), b"root"))
    seed = sampling.seed if sampling.seed is not None else random.getrandbits(31)
    temp = 0.0 if sampling.greedy else sampling.temperature
    if temp < 0.0:
        add(lib.llama_sampler_init_dist(seed))
    elif temp == 0.0:
        add(lib.llama_sampler_init_greedy())
    else:
        add(lib.llama_sampler_init_top_k(sampling.top_k))
        add(lib.llama_sampler_init_typical(1.0, 1))
        add(lib.llama_sampler_init_top_p(sampling.top_p, 1))
        add(lib.llama_sampler_init_min_p(sampling.min_p, 1))
        add(lib.llama_sampler_init_temp(temp))
        add(lib.llama_sampler_init_dist(seed))
    return chain
