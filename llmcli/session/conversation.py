"""A conversation and the token prompts it becomes, kept append-only for the KV cache.

llama.cpp keeps the longest common token prefix with the previous call, so a chat
turn costs only its new tokens *if* the prompt of turn N+1 starts with exactly the
tokens of turn N's prompt and answer. Re-rendering and re-tokenizing the whole
conversation does not guarantee that: the answer's text may tokenize differently
from the ids the model sampled, and tokenizing a long text in one piece can merge
across the boundary where the previous prompt ended. :class:`PromptLog` therefore
remembers the exact ids of earlier prompts and answers together with their text,
and builds the next prompt as *remembered ids + tokens of the new text only*.

When the context would overflow, the oldest exchanges leave the window (never the
system prompt, never the newest message); they stay in the conversation (and in
the history database), only the prompt forgets them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from llmcli.engine.base import Engine, Message, Prompt, PromptInput, TokenLevel
from llmcli.errors import DataError, UsageError

OverflowPolicy = Literal["drop-oldest", "error"]
OVERFLOW_POLICIES: tuple[OverflowPolicy, ...] = ("drop-oldest", "error")
MAX_SNAPSHOTS = 32


ChatEngine = Engine
"""A chat needs nothing beyond the engine protocol (kept as a name for older callers)."""


@dataclass
class ChatMessage:
    """One message as the user sees it; ``id`` is its row in the history database."""

    role: str
    content: str
    interrupted: bool = False
    id: int | None = None

    def to_message(self) -> Message:
        return Message(self.role, self.content)


@dataclass
class Conversation:
    """The system prompt and the messages; ``window_start`` is the first one in context."""

    system: str | None = None
    messages: list[ChatMessage] = field(default_factory=list)
    id: int | None = None
    window_start: int = 0

    @property
    def title(self) -> str:
        first = next((m.content for m in self.messages if m.role == "user"), "")
        line = " ".join(first.split())
        return line[:60] + ("…" if len(line) > 60 else "")

    def in_context(self) -> list[Message]:
        """The messages the model sees: the system prompt, then the window."""
        head = [Message("system", self.system)] if self.system else []
        return head + [m.to_message() for m in self.messages[self.window_start :]]

    def add(self, role: str, content: str, *, interrupted: bool = False) -> ChatMessage:
        message = ChatMessage(role, content, interrupted)
        self.messages.append(message)
        return message

    def last_exchange_start(self) -> int | None:
        """Index of the last user message (an exchange is a user message and its answer)."""
        for index in range(len(self.messages) - 1, -1, -1):
            if self.messages[index].role == "user":
                return index
        return None

    def pop_from(self, index: int) -> list[ChatMessage]:
        removed = self.messages[index:]
        del self.messages[index:]
        self.window_start = min(self.window_start, len(self.messages))
        return removed

    def drop_oldest_exchange(self) -> bool:
        """Move the window past the oldest exchange; False when only the newest is left."""
        newest = self.last_exchange_start()
        if newest is None or self.window_start >= newest:
            return False
        nxt = self.window_start + 1
        while nxt < newest and self.messages[nxt].role != "user":
            nxt += 1
        self.window_start = nxt
        return True

    def dropped_exchanges(self) -> int:
        return sum(1 for m in self.messages[: self.window_start] if m.role == "user")


@dataclass
class _Snapshot:
    text: str
    ids: list[int]


class PromptLog:
    """Token sequences the engine evaluated, so the next prompt extends them exactly."""

    def __init__(self) -> None:
        self._snapshots: list[_Snapshot] = []

    def reset(self) -> None:
        self._snapshots.clear()

    def tokens(self, engine: TokenLevel, messages: Sequence[Message]) -> tuple[str, list[int]]:
        """The rendered prompt and its ids, reusing the longest remembered prefix."""
        text = engine.render_chat(messages)
        base = self._longest_prefix(text)
        if base is None:
            return text, engine.chat_prompt(messages)
        suffix = text[len(base.text) :]
        extra = engine.tokenize(suffix, add_bos=False, special=True) if suffix else []
        return text, base.ids + extra

    def remember(self, text: str, ids: list[int]) -> None:
        if not text:
            return
        self._snapshots = [s for s in self._snapshots if s.text != text]
        self._snapshots.append(_Snapshot(text, list(ids)))
        del self._snapshots[:-MAX_SNAPSHOTS]

    def remember_answer(
        self, engine: TokenLevel, prompt: tuple[str, list[int]], answer: str, answer_ids: list[int]
    ) -> None:
        """Remember prompt + answer, but only if the sampled ids really spell the answer.

        A stop sequence cut from the text, or a character split at max-tokens, makes
        them differ; then the answer is simply re-tokenized next turn.
        """
        if answer_ids and engine.detokenize(answer_ids) == answer:
            self.remember(prompt[0] + answer, prompt[1] + answer_ids)

    def _longest_prefix(self, text: str) -> _Snapshot | None:
        best: _Snapshot | None = None
        for snap in self._snapshots:
            if text.startswith(snap.text) and (best is None or len(snap.text) > len(best.text)):
                best = snap
        return best


def answer_reserve(n_ctx: int, max_tokens: int | None) -> int:
    """Tokens kept free for the answer when deciding whether a turn fits."""
    wanted = max_tokens if max_tokens else n_ctx // 4
    return max(1, min(wanted, n_ctx // 2))


@dataclass
class FittedPrompt:
    """The next prompt: exact ids for a token-level engine, the messages for a server."""

    text: str
    ids: list[int]
    dropped: int
    """Exchanges that left the window to make this prompt fit."""
    messages: tuple[Message, ...] = ()
    counted: int | None = None
    """The server's count when there are no local ids (``None``: ``len(ids)``)."""

    @property
    def n_tokens(self) -> int:
        return len(self.ids) if self.counted is None else self.counted

    @property
    def input(self) -> PromptInput:
        """What to pass to ``engine.generate``."""
        return self.ids if self.counted is None else Prompt.chat(self.messages)


def measure(engine: Engine, log: PromptLog, messages: Sequence[Message]) -> FittedPrompt:
    """The prompt for ``messages`` and its size, by the engine's own count."""
    tokens = engine.token_level()
    if tokens is None:
        count = engine.count_tokens(Prompt.chat(messages))
        return FittedPrompt("", [], 0, tuple(messages), count)
    text, ids = log.tokens(tokens, messages)
    return FittedPrompt(text, ids, 0, tuple(messages))


def fit_prompt(
    engine: Engine,
    conversation: Conversation,
    log: PromptLog,
    *,
    reserve: int,
    policy: OverflowPolicy = "drop-oldest",
) -> FittedPrompt:
    """The prompt for the conversation's next answer, trimmed to leave ``reserve`` tokens.

    Local and remote engines are trimmed alike: a server's prompt is measured by
    ``engine.count_tokens`` (its tokenizer, or an estimate).
    """
    dropped = 0
    while True:
        prompt = measure(engine, log, conversation.in_context())
        size = prompt.n_tokens
        if size + reserve <= engine.n_ctx:
            prompt.dropped = dropped
            return prompt
        if policy == "error":
            raise DataError(
                f"the conversation is {size} tokens; with {reserve} kept for the answer "
                f"it does not fit the context of {engine.n_ctx}",
                hint="start a new conversation (/clear), raise --ctx, or use "
                "--on-overflow drop-oldest",
            )
        if not conversation.drop_oldest_exchange():
            what = "the system prompt and your message are" if conversation.system else "it is"
            raise DataError(
                f"your message does not fit: {what} {size} tokens, the context holds "
                f"{engine.n_ctx} with {reserve} kept for the answer",
                hint="send a shorter message, lower --max-tokens, or raise --ctx",
            )
        dropped += 1


def check_overflow_policy(value: str) -> OverflowPolicy:
    for policy in OVERFLOW_POLICIES:
        if value == policy:
            return policy
    raise UsageError(
        f"--on-overflow must be one of {', '.join(OVERFLOW_POLICIES)}, not {value!r}",
    )
