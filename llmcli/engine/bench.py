"""Prompt-processing and generation speed, measured the way llama.cpp's llama-bench does.

* ``pp N``: N tokens evaluated in one go (batches of ``n_batch``) into an empty
  cache: how fast a prompt is read.
* ``tg N``: N tokens evaluated one at a time, each after the previous, from an
  empty cache: how fast text is generated (without sampling, as llama-bench).

Tokens are random vocabulary ids after BOS (llama-bench does the same): speed does
not depend on what the tokens say. Every test runs once unmeasured (warm-up: page
cache, OpenMP threads, allocations), then ``repetitions`` times; each repetition
clears the cache. The clock stops after ``llama_synchronize``, so a GPU's queued
work is counted.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llmcli.engine.native import SideContext, SideContextSpec, side_context

N_BATCH = 512
"""llama-bench's default ``n_ubatch``; pp batches are this large."""


@dataclass(frozen=True)
class BenchTest:
    name: str  # "pp512", "tg128"
    n_prompt: int
    n_gen: int

    @property
    def n_tokens(self) -> int:
        return self.n_prompt or self.n_gen


@dataclass(frozen=True)
class BenchResult:
    test: BenchTest
    seconds: tuple[float, ...]  # one per repetition

    @property
    def rates(self) -> list[float]:
        return [self.test.n_tokens / s for s in self.seconds]

    def summary(self) -> dict[str, float]:
        rates = self.rates
        return {
            "min": min(rates),
            "median": statistics.median(rates),
            "mean": statistics.fmean(rates),
            "max": max(rates),
            "stdev": statistics.stdev(rates) if len(rates) > 1 else 0.0,
        }


def tests_for(n_prompt: int, n_gen: int) -> list[BenchTest]:
    tests = []
    if n_prompt:
        tests.append(BenchTest(f"pp{n_prompt}", n_prompt, 0))
    if n_gen:
        tests.append(BenchTest(f"tg{n_gen}", 0, n_gen))
    return tests


def _tokens(n: int, n_vocab: int, bos: int, rng: random.Random) -> list[int]:
    first = [bos] if bos >= 0 else []
    return (first + [rng.randrange(n_vocab) for _ in range(n)])[:n]


def _time_once(ctx: SideContext, test: BenchTest, tokens: list[int]) -> float:
    ctx.clear()
    started = time.perf_counter()
    if test.n_prompt:
        ctx.decode(tokens, outputs="last")
    else:
        for pos, token in enumerate(tokens):
            ctx.decode([token], start=pos, outputs="last")
    ctx.synchronize()
    return time.perf_counter() - started


def run_bench(
    engine: Any,
    tests: Sequence[BenchTest],
    *,
    repetitions: int,
    threads: int,
    on_sample: Callable[[BenchTest, int, float], None] | None = None,
) -> list[BenchResult]:
    """Warm up and time each test ``repetitions`` times on a side context of the engine's model."""
    longest = max((t.n_tokens for t in tests), default=1)
    spec = SideContextSpec(n_ctx=longest, threads=threads, n_batch=N_BATCH)
    rng = random.Random(0)
    results = []
    with side_context(engine, spec) as ctx:
        for test in tests:
            tokens = _tokens(test.n_tokens, ctx.n_vocab, engine.bos_id, rng)
            _time_once(ctx, test, tokens)  # warm-up
            seconds = []
            for rep in range(repetitions):
                elapsed = _time_once(ctx, test, tokens)
                seconds.append(elapsed)
                if on_sample is not None:
                    on_sample(test, rep, elapsed)
            results.append(BenchResult(test, tuple(seconds)))
    return results
