"""Warm vs cold: per-call overhead of ``llmcli ask`` with the engine server, and the TTFT of
``ask -c`` on a long conversation in a new process whose KV state waits on disk.

1. ``--calls`` (50) calls of ``llmcli ask -n 8 --greedy "…"`` in a loop, warm (the engine
   server, started before the loop) and cold (``--keep-alive 0``), interleaved so machine
   noise hits both alike; the answers must be identical. Overhead = wall time of the call
   minus its generation time (``stats.total_s``). Target: warm overhead <= 0.12 s.
2. A conversation of ~3,000 tokens is built with one ``ask -c`` (its KV state is saved by
   the server), the server is stopped, and a new process runs ``ask -c`` with a freshly
   started server: its TTFT against the TTFT of a fresh one-line prompt (target <= 2x), and
   against the same ``ask -c`` with ``--keep-alive 0`` (the whole prefill).

Prints a table; asserts nothing. Uses its own LLMCLI_HOME and stops every server it starts.

    python benchmarks/bench_warm.py [--calls 50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

PROMPT = "Give one tip for learning the piano."
ASK = ["ask", "-n", "8", "--greedy", "--json"]


def llmcli(env: dict[str, str], *args: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "llmcli", *args], capture_output=True, env=env, check=False
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"llmcli {' '.join(args)} failed: {result.stderr.decode()}")
    out = result.stdout.decode().strip()
    return wall, (json.loads(out) if out.startswith("{") else {"text": out})


def calls(env_warm: dict[str, str], env_cold: dict[str, str], n: int) -> dict[str, Any]:
    llmcli(env_warm, *ASK, PROMPT)  # start the server, load the model
    rows: dict[str, list[float]] = {"warm": [], "cold": [], "warm_gen": [], "cold_gen": []}
    texts: dict[str, set[str]] = {"warm": set(), "cold": set()}
    for _ in range(n):
        for name, env in (("warm", env_warm), ("cold", env_cold)):
            wall, data = llmcli(env, *ASK, PROMPT)
            rows[name].append(wall - data["stats"]["total_s"])
            rows[f"{name}_gen"].append(data["stats"]["total_s"])
            texts[name].add(data["text"])
    return {"rows": rows, "same": texts["warm"] == texts["cold"] and len(texts["warm"]) == 1}


def long_message(tokens: int) -> str:
    facts = [f"Fact {n}: the box with number {n} holds a small blue marble." for n in range(400)]
    text = " ".join(facts)
    return text[: tokens * 4]  # ~4 characters per token for this text


def conversation_ttft(env_warm: dict[str, str], env_cold: dict[str, str]) -> dict[str, float]:
    text = long_message(2900)
    _, first = llmcli(env_warm, *ASK, "-c", f"Read this carefully. {text}")
    llmcli(env_warm, "stop")
    time.sleep(1.0)  # the state is written by the server before it exits; let it go
    wall, cont = llmcli(env_warm, *ASK, "-c", "Which box holds number 7?")
    _, fresh = llmcli(env_warm, *ASK, "Hi")
    _, cold = llmcli(env_cold, *ASK, "-c", "Which box holds number 7?")
    llmcli(env_warm, "stop")
    return {
        "conversation_tokens": first["stats"]["prompt_tokens"] + first["stats"]["generated_tokens"],
        "prompt_tokens": cont["stats"]["prompt_tokens"],
        "cached_tokens": cont["stats"]["cached_tokens"],
        "ttft_continue": cont["stats"]["ttft_s"],
        "wall_continue": wall,
        "ttft_fresh": fresh["stats"]["ttft_s"],
        "ttft_cold_continue": cold["stats"]["ttft_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as home:
        base = dict(os.environ, LLMCLI_HOME=home, HF_HUB_OFFLINE="1")
        warm = dict(base, LLMCLI_KEEP_ALIVE="10m")
        cold = dict(base, LLMCLI_KEEP_ALIVE="0")
        try:
            loop = calls(warm, cold, args.calls)
            llmcli(warm, "stop")
            conv = conversation_ttft(warm, cold)
        finally:
            subprocess.run(
                [sys.executable, "-m", "llmcli", "stop"], env=warm, capture_output=True, check=False
            )
    rows = loop["rows"]
    print(f"{args.calls} calls of: llmcli ask -n 8 --greedy {PROMPT!r} (shared machine)")
    print(f"{'':28}{'cold (--keep-alive 0)':>24}{'warm (server)':>16}")
    for label, key in (("overhead median (s)", ""), ("overhead mean (s)", "mean")):
        fn = statistics.mean if key else statistics.median
        print(f"{label:28}{fn(rows['cold']):>24.3f}{fn(rows['warm']):>16.3f}")
    print(
        f"{'generation median (s)':28}{statistics.median(rows['cold_gen']):>24.3f}"
        f"{statistics.median(rows['warm_gen']):>16.3f}"
    )
    print(f"{'same output':28}{'yes' if loop['same'] else 'NO':>40}")
    target = "met" if statistics.median(rows["warm"]) <= 0.12 else "missed"
    print(f"warm overhead target <= 0.12 s: {target}")
    print()
    print(f"ask -c on a {conv['conversation_tokens']}-token conversation, new process, cold server")
    print(
        f"  prompt tokens {conv['prompt_tokens']}, reused from the saved state "
        f"{conv['cached_tokens']}"
    )
    print(
        f"  TTFT ask -c (state on disk):        {conv['ttft_continue']:.3f} s "
        f"(wall {conv['wall_continue']:.2f} s incl. server start and model load)"
    )
    print(f"  TTFT fresh one-line prompt:         {conv['ttft_fresh']:.3f} s")
    print(f"  TTFT ask -c with --keep-alive 0:    {conv['ttft_cold_continue']:.3f} s")
    ratio = conv["ttft_continue"] / max(conv["ttft_fresh"], 1e-9)
    print(
        f"  ratio to the fresh prompt: {ratio:.2f}x (target <= 2x: "
        f"{'met' if ratio <= 2 else 'missed'})"
    )


if __name__ == "__main__":
    main()
