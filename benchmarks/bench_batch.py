"""Throughput of ``ask --each-line`` (batched sequences) against one ``ask`` call per item.

32 short items, ``--max-tokens 64``, greedy (so every run generates the same tokens,
which is also checked), the bundled model, 2 threads, one run of each:

* 32 sequential ``llmcli ask --keep-alive 0`` calls (one process and model load per item);
* 32 sequential ``llmcli ask`` calls through the warm engine server (``--keep-alive 5m``:
  the model stays loaded between calls; the server is stopped afterwards);
* ``llmcli ask --each-line --parallel 1`` (one process, one sequence at a time);
* ``llmcli ask --each-line --parallel 8`` (one process, 8 sequences per batch).

Total tokens/s is every generated token over the wall time of the whole run
(process start and model load included: that is what a user waits for). Prints a
table; asserts nothing (target: --parallel 8 >= 2.5x the sequential calls).

    python benchmarks/bench_batch.py [--items 32] [--tokens 64] [--parallel 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

PROMPT = "Classify the sentiment as positive or negative, and say why:"
ITEMS = [
    "I love this phone, the battery lasts for days.",
    "The delivery was late and the box was crushed.",
    "Great service, friendly staff, will come back.",
    "The movie was boring and far too long.",
    "Best pizza I have had in years!",
    "The hotel room smelled of smoke.",
    "My new headphones sound amazing.",
    "The app crashes every time I open it.",
    "What a beautiful sunny day for a walk.",
    "I waited an hour and nobody helped me.",
    "This book kept me up all night, wonderful.",
    "The coffee was cold and bitter.",
    "Our guide was knowledgeable and funny.",
    "The software update broke my printer.",
    "Lovely garden, the roses are in bloom.",
    "The train was cancelled again.",
    "The concert was unforgettable.",
    "My order arrived with missing parts.",
    "The kids loved the museum.",
    "The soup was far too salty.",
    "Fast shipping and great packaging.",
    "The seats were uncomfortable and cramped.",
    "I finally passed my driving test!",
    "The customer support line never answers.",
    "This laptop is light and very fast.",
    "The paint started peeling after a week.",
    "A cozy cafe with excellent cakes.",
    "The noise from the street kept me awake.",
    "The teacher explained everything clearly.",
    "My flight was delayed by six hours.",
    "The new park is clean and beautiful.",
    "The charger stopped working in two days.",
]


def _llmcli(args: list[str], stdin: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "llmcli", "ask", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    )
    return result, time.perf_counter() - started


def common(tokens: int, threads: int) -> list[str]:
    return ["--greedy", "--max-tokens", str(tokens), "--threads", str(threads), "--json"]


def sequential(
    items: list[str], tokens: int, threads: int, keep_alive: str
) -> tuple[list[str], int, float]:
    texts, total, wall = [], 0, 0.0
    for item in items:
        args = [*common(tokens, threads), "--keep-alive", keep_alive, PROMPT]
        result, elapsed = _llmcli(args, item)
        data = json.loads(result.stdout)
        texts.append(data["text"])
        total += data["stats"]["generated_tokens"]
        wall += elapsed
    return texts, total, wall


def batched(
    items: list[str], tokens: int, threads: int, parallel: int
) -> tuple[list[str], int, float]:
    args = ["--each-line", "--parallel", str(parallel), *common(tokens, threads), PROMPT]
    result, wall = _llmcli(args, "\n".join(items) + "\n")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    total = sum(r["stats"]["generated_tokens"] for r in records)
    return [r["text"] for r in records], total, wall


def _warm(items: list[str], tokens: int, threads: int) -> tuple[list[str], int, float]:
    try:
        return sequential(items, tokens, threads, "5m")
    finally:
        subprocess.run([sys.executable, "-m", "llmcli", "stop"], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    items = (ITEMS * (args.items // len(ITEMS) + 1))[: args.items]

    runs = {
        f"{args.items} ask calls, cold": sequential(items, args.tokens, args.threads, "0"),
        f"{args.items} ask calls, warm": _warm(items, args.tokens, args.threads),
        "--each-line --parallel 1": batched(items, args.tokens, args.threads, 1),
        f"--each-line --parallel {args.parallel}": batched(
            items, args.tokens, args.threads, args.parallel
        ),
    }
    base_texts, base_tokens, base_wall = next(iter(runs.values()))
    base_rate = base_tokens / base_wall
    print(f"items: {args.items}  max tokens: {args.tokens}  threads: {args.threads}  (one run)")
    print(f"{'run':<30}{'wall s':>9}{'tokens':>8}{'tok/s':>9}{'x seq':>7}{'same text':>11}")
    for name, (texts, total, wall) in runs.items():
        same = sum(a == b for a, b in zip(texts, base_texts, strict=True))
        rate = total / wall
        print(
            f"{name:<30}{wall:>9.1f}{total:>8}{rate:>9.1f}{rate / base_rate:>7.2f}"
            f"{f'{same}/{len(items)}':>11}"
        )
    print("x seq: total tok/s over that of the cold ask calls; target: --parallel 8 >= 2.5 x")


if __name__ == "__main__":
    main()
