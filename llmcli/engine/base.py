"""The engine protocol and the plain values that cross it.

An engine knows nothing about flags, terminals or files on disk beyond the model
it loaded: it tokenizes, renders a chat into a prompt, and streams generated text
pieces, ending with :class:`GenerationStats`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

FinishReason = Literal["stop", "length", "interrupted", "error"]
GpuLayers = int | Literal["auto", "all"]

CTX_GRANULE = 256
"""llama.cpp rounds ``n_ctx`` up to a multiple of 256 while the Python binding
sizes its buffers from the value asked for; asking for multiples keeps them equal."""

DEFAULT_CTX_CAP = 4096


MAX_CTX = 1 << 30
"""The largest context llmcli asks llama.cpp for: sizes past 2**32 would wrap in its 32-bit
fields (``--ctx 4294967296`` became a tiny context), and no machine holds a KV cache this big."""
MAX_SEED = 2**32 - 2
"""llama.cpp seeds are 32-bit and 0xFFFFFFFF means "random": larger seeds would wrap."""


def round_ctx(n: int) -> int:
    """Round a context size up to llama.cpp's granule (never below one granule)."""
    return max(CTX_GRANULE, math.ceil(n / CTX_GRANULE) * CTX_GRANULE)


@dataclass(frozen=True)
class LoraSpec:
    """A LoRA adapter file and the scale its delta is applied with."""

    path: Path
    scale: float = 1.0


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model. ``n_ctx=None`` means the trained context capped at 4096."""

    n_ctx: int | None = None
    gpu_layers: GpuLayers = "auto"
    threads: int | None = None
    loras: tuple[LoraSpec, ...] = ()
    chat_template: str | None = None
    verbose: bool = False


@dataclass(frozen=True)
class Message:
    role: str
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass
class Sampling:
    """Sampling settings; ``greedy`` is argmax decoding, ŵ_t = argmax P(w | context)."""

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    seed: int | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    greedy: bool = False
    logprobs: int = 0
    """Number of alternatives to report per token (0: none, and no extra cost)."""


@dataclass
class TokenPiece:
    """One generated token as text, with its probability when asked for."""

    text: str
    token_id: int
    logprob: float | None = None
    top: list[tuple[str, float]] | None = None


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    cached_tokens: int = 0
    """Prompt tokens whose KV entries were reused from the previous call."""
    generated_tokens: int = 0
    ttft_s: float = 0.0
    """Time to first token: prompt evaluation plus the first sampling step."""
    total_s: float = 0.0
    finish_reason: FinishReason = "stop"
    error: str | None = None
    """Why the generation failed after its first token (``finish_reason == "error"``)."""

    @property
    def decode_tokens_per_s(self) -> float:
        """Generation speed after the first token (prompt evaluation excluded)."""
        decode_s = self.total_s - self.ttft_s
        if self.generated_tokens <= 1 or decode_s <= 0:
            return 0.0
        return (self.generated_tokens - 1) / decode_s

    def to_dict(self) -> dict[str, float | int | str]:
        result: dict[str, float | int | str] = {
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "generated_tokens": self.generated_tokens,
            "ttft_s": round(self.ttft_s, 4),
            "total_s": round(self.total_s, 4),
            "tokens_per_s": round(self.decode_tokens_per_s, 2),
            "finish_reason": self.finish_reason,
        }
        if self.error:
            result["error"] = self.error
        return result


@dataclass
class Generation:
    """A running generation: iterate for pieces; ``stats`` is set when it ends.

    ``cancel()`` may be called from any thread (a signal handler, the REPL) and
    stops generation at the next token or inside the current prompt evaluation.
    """

    pieces: Iterator[TokenPiece]
    stats: GenerationStats = field(default_factory=GenerationStats)
    _cancel: list[object] = field(default_factory=list, repr=False)

    def __iter__(self) -> Iterator[TokenPiece]:
        return self.pieces

    def cancel(self) -> None:
        for hook in self._cancel:
            hook()  # type: ignore[operator]

    def text(self) -> str:
        """Drain the generation and return all of its text."""
        return "".join(piece.text for piece in self)


@runtime_checkable
class Engine(Protocol):
    """What the CLI, the REPL and the inspection commands need from a model."""

    model_name: str
    n_ctx: int

    def tokenize(self, text: str, *, add_bos: bool = True, special: bool = False) -> list[int]:
        """Token ids for ``text`` with the model's own tokenizer."""
        ...

    def detokenize(self, ids: Sequence[int]) -> str: ...

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes of one token (may be part of a UTF-8 character)."""
        ...

    def chat_prompt(self, messages: Sequence[Message]) -> list[int]:
        """Tokens of ``messages`` rendered with the chat template, ready to generate."""
        ...

    def text_prompt(self, text: str) -> list[int]:
        """Tokens of a raw completion prompt (BOS added when the model wants it)."""
        ...

    def generate(self, prompt: Sequence[int], sampling: Sampling) -> Generation: ...

    def next_token_logprobs(self, prompt: Sequence[int]) -> np.ndarray:
        """Log-softmax over the vocabulary for the token after ``prompt``."""
        ...

    def close(self) -> None: ...
