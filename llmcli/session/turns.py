"""A chat in progress: the conversation, its prompt log, and its saved copy, kept in step.

Both ``llmcli chat`` and ``llmcli ask -c`` take turns through :class:`ChatSession`:
``begin_turn`` adds the user's message, fits the prompt into the context and saves
the message; the caller streams the answer; ``finish_turn`` records it (complete or
interrupted), saves it and remembers its exact token ids for the next turn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llmcli.engine.base import Engine, GenerationStats, TokenPiece
from llmcli.errors import LlmcliError
from llmcli.session.conversation import (
    ChatMessage,
    Conversation,
    FittedPrompt,
    OverflowPolicy,
    PromptLog,
    answer_reserve,
    fit_prompt,
    measure,
)
from llmcli.session.history import HistoryStore


@dataclass
class Turn:
    prompt: FittedPrompt
    user: ChatMessage


class ChatSession:
    """One conversation with one engine at a time; every change is saved at once."""

    def __init__(
        self,
        engine: Engine,
        *,
        model_name: str,
        model_ref: str | None = None,
        store: HistoryStore | None = None,
        conversation: Conversation | None = None,
        policy: OverflowPolicy = "drop-oldest",
    ) -> None:
        self.engine = engine
        self.model_name = model_name
        self.model_ref = model_ref
        self.store = store
        self.conversation = conversation or Conversation()
        self.policy = policy
        self.log = PromptLog()
        self._used: int | None = None

    # -- turns --------------------------------------------------------------------------

    def begin_turn(self, text: str, *, max_tokens: int | None) -> Turn:
        """Add the user's message and build the prompt; on failure the message is dropped."""
        user = self.conversation.add("user", text)
        try:
            prompt = self._fit(max_tokens)
            self._save(user)
        except BaseException:
            self.conversation.pop_from(len(self.conversation.messages) - 1)
            raise
        return Turn(prompt, user)

    def retry_turn(self, *, max_tokens: int | None) -> Turn:
        """Forget the last answer and build the prompt that asks for it again."""
        start = self.conversation.last_exchange_start()
        if start is None:
            raise LlmcliError("nothing to retry yet", hint="send a message first")
        removed = self.conversation.pop_from(start + 1)
        self._delete(removed)
        return Turn(self._fit(max_tokens), self.conversation.messages[start])

    def finish_turn(
        self, turn: Turn, pieces: Sequence[TokenPiece], stats: GenerationStats, *, interrupted: bool
    ) -> ChatMessage:
        text = "".join(piece.text for piece in pieces)
        answer = self.conversation.add("assistant", text, interrupted=interrupted)
        ids = [piece.token_id for piece in pieces if piece.token_id >= 0]
        tokens = self.engine.token_level()
        if tokens is not None and stats.finish_reason != "error":  # a server that died is gone
            self.log.remember_answer(tokens, (turn.prompt.text, turn.prompt.ids), text, ids)
        self._used = turn.prompt.n_tokens + stats.generated_tokens
        self._save(answer, stats=stats.to_dict())
        return answer

    def _fit(self, max_tokens: int | None) -> FittedPrompt:
        reserve = answer_reserve(self.engine.n_ctx, max_tokens)
        prompt = fit_prompt(
            self.engine, self.conversation, self.log, reserve=reserve, policy=self.policy
        )
        self.log.remember(prompt.text, prompt.ids)
        self._used = prompt.n_tokens
        return prompt

    # -- editing --------------------------------------------------------------------------

    def undo(self) -> list[ChatMessage]:
        """Drop the last exchange (the user's message and its answer)."""
        start = self.conversation.last_exchange_start()
        if start is None:
            return []
        removed = self.conversation.pop_from(start)
        self._delete(removed)
        self._used = None
        return removed

    def clear(self) -> None:
        """Start a new conversation with the same system prompt (the old one stays saved)."""
        self.conversation = Conversation(system=self.conversation.system)
        self._used = None

    def set_system(self, text: str | None) -> None:
        self.conversation.system = text or None
        if self.store is not None and self.conversation.id is not None:
            self.store.update(self.conversation.id, system=self.conversation.system)
        self._used = None

    def replace(self, conversation: Conversation) -> None:
        """Continue with ``conversation`` (``/load``), saved as a new one."""
        if self.store is not None:
            self.store.save_new(conversation, model=self.model_name, model_ref=self.model_ref)
        self.conversation = conversation
        self._used = None

    def switch_engine(self, engine: Engine, *, model_name: str, model_ref: str | None) -> None:
        old = self.engine
        self.engine, self.model_name, self.model_ref = engine, model_name, model_ref
        self.log.reset()
        self._used = None
        if self.store is not None and self.conversation.id is not None:
            self.store.update(self.conversation.id, model=model_name, model_ref=model_ref)
        if old is not engine:
            old.close()

    # -- context ------------------------------------------------------------------------

    def context_used(self) -> int:
        """Tokens the conversation's window takes in the context now."""
        if self._used is None:
            if not self.conversation.messages and not self.conversation.system:
                return 0
            self._used = measure(self.engine, self.log, self.conversation.in_context()).n_tokens
        return self._used

    def system_tokens(self) -> int:
        if not self.conversation.system:
            return 0
        system = Conversation(self.conversation.system).in_context()
        return measure(self.engine, self.log, system).n_tokens

    # -- saving -------------------------------------------------------------------------

    def _save(self, message: ChatMessage, *, stats: Mapping[str, object] | None = None) -> None:
        if self.store is None:
            return
        if self.conversation.id is None:
            self.conversation.id = self.store.create(
                model=self.model_name, model_ref=self.model_ref, system=self.conversation.system
            )
        self.store.append(self.conversation.id, message, stats=stats)

    def _delete(self, messages: list[ChatMessage]) -> None:
        if self.store is not None and self.conversation.id is not None:
            self.store.delete_messages(self.conversation.id, messages)
