"""The one-line generation summary printed (dim, on stderr) after an answer."""

from __future__ import annotations

from llmcli.engine.base import GenerationStats

SEP = " · "


def _tokens(n: int, noun: str = "token") -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def format_stats(stats: GenerationStats) -> str:
    """``42 tokens · 141.2 tok/s · TTFT 0.09 s · prompt 31 (cached 12) · stop``.

    Speed is decode speed (prompt evaluation excluded, that is what TTFT measures);
    parts that mean nothing for a run (speed of a one-token answer, the TTFT of an
    answer that produced nothing, a zero cache hit) are left out rather than shown as 0.
    """
    parts = [_tokens(stats.generated_tokens)]
    speed = stats.decode_tokens_per_s
    if speed > 0:
        parts.append(f"{speed:.1f} tok/s")
    if stats.generated_tokens > 0:
        parts.append(f"TTFT {stats.ttft_s:.2f} s")
    prompt = f"prompt {stats.prompt_tokens:,}"
    if stats.cached_tokens:
        prompt += f" (cached {stats.cached_tokens:,})"
    parts.append(prompt)
    parts.append(stats.finish_reason)
    return SEP.join(parts)
