"""A scriptable engine for UI tests (after simonw/llm's MockModel).

``enqueue()`` the replies to give; ``history`` records every prompt it was asked
to continue. Tokens are UTF-8 bytes (id = byte value), so token counts are
predictable and multi-byte characters really are split across tokens.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence

import numpy as np

from llmcli.engine.base import (
    Generation,
    GenerationStats,
    Message,
    PromptInput,
    Sampling,
    TokenLevel,
    TokenPiece,
    encode,
)
from llmcli.engine.stops import StopMatcher
from llmcli.engine.template import BUILTIN_FORMATS, ChatTemplate


class FakeEngine:
    """Replies with queued text, split into pieces of ``piece_size`` characters."""

    n_vocab = 256
    bos_id = -1
    eos_id = -1

    def __init__(
        self, *, n_ctx: int = 4096, model_name: str = "fake", piece_size: int = 3, delay: float = 0
    ) -> None:
        self.model_name = model_name
        self.n_ctx = n_ctx
        self.piece_size = piece_size
        self.delay = delay
        self.notices: list[str] = []
        self.template = ChatTemplate(BUILTIN_FORMATS["chatml"])
        self.history: list[list[int]] = []
        self.samplings: list[Sampling] = []
        self._replies: deque[str] = deque()

    def enqueue(self, *replies: str) -> None:
        self._replies.extend(replies)

    def tokenize(self, text: str, *, add_bos: bool = True, special: bool = False) -> list[int]:
        return list(text.encode("utf-8"))

    def token_bytes(self, token_id: int, *, special: bool = False) -> bytes:
        return bytes([token_id])

    def is_end_of_generation(self, token_id: int) -> bool:
        return False

    def token_text(self, token_id: int) -> str:
        return bytes([token_id]).decode("utf-8", errors="replace")

    def detokenize(self, ids: Sequence[int], *, special: bool = False) -> str:
        return bytes(ids).decode("utf-8", errors="replace")

    def render_chat(
        self, messages: Sequence[Message], *, add_generation_prompt: bool = True
    ) -> str:
        return self.template.render(
            [m.to_dict() for m in messages], add_generation_prompt=add_generation_prompt
        )

    def chat_prompt(self, messages: Sequence[Message]) -> list[int]:
        return self.tokenize(self.render_chat(messages))

    def text_prompt(self, text: str) -> list[int]:
        return self.tokenize(text)

    def count_tokens(self, prompt: PromptInput) -> int:
        return len(encode(self, prompt))

    def token_level(self) -> TokenLevel:
        return self

    def embeddings(self) -> None:
        """The fake engine has no vectors to give."""
        return None

    def generate(self, prompt: PromptInput, sampling: Sampling) -> Generation:
        ids = encode(self, prompt)
        self.history.append(ids)
        self.samplings.append(sampling)
        reply = self._replies.popleft() if self._replies else ""
        stats = GenerationStats(prompt_tokens=len(ids))
        cancelled: list[bool] = []
        pieces = self._pieces(reply, sampling, stats, cancelled)
        return Generation(pieces, stats, on_cancel=lambda: cancelled.append(True))

    def _pieces(
        self, reply: str, sampling: Sampling, stats: GenerationStats, cancelled: list[bool]
    ) -> Iterator[TokenPiece]:
        started = time.perf_counter()
        stops = StopMatcher(sampling.stop)
        limit = sampling.max_tokens or self.n_ctx
        stats.finish_reason = "stop"
        for start in range(0, len(reply), self.piece_size):
            if cancelled:
                stats.finish_reason = "interrupted"
                break
            if stats.generated_tokens >= limit:
                stats.finish_reason = "length"
                break
            if self.delay:
                time.sleep(self.delay)
            stats.generated_tokens += 1
            if stats.generated_tokens == 1:
                stats.ttft_s = time.perf_counter() - started
            text = stops.feed(reply[start : start + self.piece_size])
            yield TokenPiece(text=text, token_id=0)
            if stops.stopped:
                break
        tail = "" if stops.stopped else stops.flush()
        if tail:
            yield TokenPiece(text=tail, token_id=-1)
        stats.total_s = time.perf_counter() - started

    def next_token_logprobs(self, prompt: Sequence[int]) -> np.ndarray:
        uniform: np.ndarray = np.full(self.n_vocab, -np.log(self.n_vocab))
        return uniform

    def close(self) -> None:
        pass
