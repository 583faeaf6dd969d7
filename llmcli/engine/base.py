"""The engine protocol and the plain values that cross it.

An engine knows nothing about flags, terminals or files on disk beyond the model
it loaded: it tokenizes, renders a chat into a prompt, and streams generated text
pieces, ending with :class:`GenerationStats`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from llmcli.errors import UsageError
from llmcli.knobs import KNOBS, knob_default

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
    """Sampling settings; ``greedy`` is argmax decoding, ŵ_t = argmax P(w | context).

    Defaults, bounds and help come from :data:`llmcli.knobs.KNOBS`; the fields are
    spelled out so engines read them typed. ``grammar`` (GBNF text) and
    ``json_schema`` are carried for constrained sampling, so that structured
    output is a setting like any other rather than a special engine.
    """

    temperature: float = knob_default("temperature")
    top_p: float = knob_default("top_p")
    top_k: int = knob_default("top_k")
    min_p: float = knob_default("min_p")
    repeat_penalty: float = knob_default("repeat_penalty")
    presence_penalty: float = knob_default("presence_penalty")
    seed: int | None = knob_default("seed")
    max_tokens: int | None = knob_default("max_tokens")
    stop: tuple[str, ...] = ()
    greedy: bool = knob_default("greedy")
    logprobs: int = 0
    """Number of alternatives to report per token (0: none, and no extra cost)."""
    grammar: str | None = None
    """GBNF text the answer must match (llama.cpp's grammar sampler); wins over ``json_schema``."""
    json_schema: dict[str, Any] | None = None
    """A JSON Schema the answer must match: a local engine samples with its grammar, a
    server receives it as ``response_format``. Carried here, with the other settings, so
    that whatever runs the engine (a served one too) applies it."""

    def knob_values(self, target: Literal["llama", "remote"]) -> dict[str, Any]:
        """``{argument: value}`` for every knob the target knows, under the target's name.

        ``greedy`` is applied here once: temperature 0 (and top-p 1 for a server).
        """
        values: dict[str, Any] = {}
        for knob in KNOBS.values():
            name = knob.llama if target == "llama" else knob.remote
            value = getattr(self, knob.name)
            if name is not None and value is not None:
                values[name] = value
        if self.greedy and target == "llama":
            values["temp"] = 0.0
        elif self.greedy:
            values.update(temperature=0.0, top_p=1.0)
        return values


@dataclass
class TokenPiece:
    """One generated token as text, with its probability when asked for."""

    text: str
    token_id: int
    logprob: float | None = None
    top: list[tuple[str, float]] | None = None
    top_ids: list[int] | None = None
    """The ids of ``top``'s tokens, in its order (``None`` from a server without ids)."""

    @classmethod
    def ranked(
        cls, text: str, token_id: int, dist: Any, top: Any, token_text: Callable[[int], str]
    ) -> TokenPiece:
        """The token with its log-probability in ``dist`` and the ``top`` ids' alternatives."""
        ids = [int(i) for i in top]
        alternatives = [(token_text(i), float(dist[i])) for i in ids]
        return cls(text, token_id, float(dist[token_id]), alternatives, ids)


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


@dataclass(frozen=True)
class Prompt:
    """What to continue: chat ``messages``, raw ``text``, or token ``ids``.

    Exactly one is set. A local engine turns messages or text into ids with its
    own template and tokenizer; a server receives messages or text as they are
    (it owns the template) and refuses ids. ``generate`` also takes a plain
    sequence of ids, shorthand for :meth:`Prompt.tokens`.
    """

    messages: tuple[Message, ...] | None = None
    text: str | None = None
    ids: tuple[int, ...] | None = None

    @classmethod
    def chat(cls, messages: Sequence[Message]) -> Prompt:
        return cls(messages=tuple(messages))

    @classmethod
    def raw(cls, text: str) -> Prompt:
        return cls(text=text)

    @classmethod
    def tokens(cls, ids: Sequence[int]) -> Prompt:
        return cls(ids=tuple(ids))

    @property
    def kind(self) -> Literal["chat", "text", "ids"]:
        if self.messages is not None:
            return "chat"
        return "text" if self.text is not None else "ids"


PromptInput = Prompt | Sequence[int]
"""What ``generate`` accepts: a :class:`Prompt`, or token ids."""


def as_prompt(prompt: PromptInput) -> Prompt:
    return prompt if isinstance(prompt, Prompt) else Prompt.tokens(prompt)


class Generation:
    """A running generation: iterate for pieces; ``stats`` is final once it ends.

    The whole protocol every engine's generation offers (a socket client builds
    one from its own iterator and cancel hook): iterate, ``cancel()`` from any
    thread (a signal handler, the REPL) to stop at the next token or inside the
    current prompt evaluation, ``close()`` to wait until the engine has stopped
    (so its stats are final and it is free for the next call), ``text()``.
    """

    def __init__(
        self,
        pieces: Iterator[TokenPiece],
        stats: GenerationStats | None = None,
        *,
        on_cancel: Callable[[], None] | None = None,
    ) -> None:
        self.pieces = pieces
        self.stats = stats if stats is not None else GenerationStats()
        self._on_cancel = on_cancel

    def __iter__(self) -> Iterator[TokenPiece]:
        return self.pieces

    def cancel(self) -> None:
        if self._on_cancel is not None:
            self._on_cancel()

    def close(self) -> None:
        """Stop and wait for the engine (generators close their ``finally`` blocks)."""
        if isinstance(self.pieces, Generator):  # a plain iterator has nothing to close
            self.pieces.close()

    def text(self) -> str:
        """Drain the generation and return all of its text."""
        return "".join(piece.text for piece in self)


@runtime_checkable
class Engine(Protocol):
    """What every engine offers, local or remote: the commands, the REPL and sessions need no more.

    ``count_tokens`` is what the prompt takes of the ``n_ctx`` window (a server
    counts with its own tokenizer where it can). Token-level work (ids, token
    bytes, whole distributions) is a separate capability: :meth:`token_level`.
    """

    model_name: str
    n_ctx: int
    notices: list[str]
    """Things worth telling the user once, after loading (no chat template, …)."""

    def count_tokens(self, prompt: PromptInput) -> int: ...

    def generate(self, prompt: PromptInput, sampling: Sampling) -> Generation: ...

    def token_level(self) -> TokenLevel | None:
        """The token-level view of this engine, or ``None`` when it has none (a server)."""
        ...

    def embeddings(self) -> Embeddings | None:
        """Pooled embedding vectors of texts, or ``None`` when this engine cannot give them."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Embeddings(Protocol):
    """One vector per text (``llmcli embed``): a local side context or ``/v1/embeddings``."""

    poolings: tuple[str, ...]
    """The ``pooling`` values honoured; ``()`` when the server decides its own pooling."""

    def embed(self, texts: Sequence[str], *, pooling: str) -> list[np.ndarray]:
        """Vectors in input order, not normalized by the caller's request."""
        ...


@runtime_checkable
class TokenLevel(Protocol):
    """Tokens and distributions: what ``tokenize``/``next`` and exact chat prompts need."""

    model_name: str
    n_ctx: int
    n_vocab: int

    @property
    def bos_id(self) -> int:
        """-1 when the model has none."""
        ...

    @property
    def eos_id(self) -> int: ...

    def is_end_of_generation(self, token_id: int) -> bool: ...

    def tokenize(self, text: str, *, add_bos: bool = True, special: bool = False) -> list[int]:
        """Token ids for ``text`` with the model's own tokenizer."""
        ...

    def detokenize(self, ids: Sequence[int], *, special: bool = False) -> str: ...

    def token_bytes(self, token_id: int, *, special: bool = False) -> bytes:
        """The raw bytes of one token (may be part of a UTF-8 character)."""
        ...

    def token_text(self, token_id: int) -> str: ...

    def render_chat(
        self, messages: Sequence[Message], *, add_generation_prompt: bool = True
    ) -> str: ...

    def chat_prompt(self, messages: Sequence[Message]) -> list[int]:
        """Tokens of ``messages`` rendered with the chat template, ready to generate."""
        ...

    def text_prompt(self, text: str) -> list[int]:
        """Tokens of a raw completion prompt (BOS added when the model wants it)."""
        ...

    def next_token_logprobs(self, prompt: Sequence[int]) -> np.ndarray:
        """Log-softmax over the vocabulary for the token after ``prompt``."""
        ...


def encode(tokens: TokenLevel, prompt: PromptInput) -> list[int]:
    """A prompt's ids with a token-level engine's own template and tokenizer."""
    prompt = as_prompt(prompt)
    if prompt.messages is not None:
        return tokens.chat_prompt(prompt.messages)
    if prompt.text is not None:
        return tokens.text_prompt(prompt.text)
    return list(prompt.ids or ())


def require_token_level(engine: Engine, what: str) -> TokenLevel:
    """``engine.token_level()``, or a usage error saying ``what`` needs a local model."""
    tokens = engine.token_level()
    if tokens is None:
        raise UsageError(
            f"{what} is not available with a remote engine",
            hint="it needs the model's own tokenizer: use a local model "
            "(--engine local, or unset LLMCLI_BASE_URL)",
        )
    return tokens
