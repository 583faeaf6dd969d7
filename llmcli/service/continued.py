"""``llmcli ask -c``: one more turn in the most recent conversation, both messages saved."""

from __future__ import annotations

from collections.abc import Callable

from llmcli.engine.base import Engine, PromptInput
from llmcli.service.turn import TurnResult
from llmcli.session.history import HistoryStore
from llmcli.session.turns import ChatSession, Turn


class ContinuedAsk:
    """The last conversation, ready for one more turn.

    With no conversation yet, the turn starts one. Without ``-m`` the conversation's
    own model is used, so ``ask -c`` after a chat goes on with the model of that chat.
    ``fresh`` always starts a new one: a plain ``ask`` saved in history (``save_ask``).
    """

    def __init__(self, store: HistoryStore | None = None, *, fresh: bool = False) -> None:
        self.store = store or HistoryStore()
        last = None if fresh else self.store.last_id()
        self.conversation = self.store.load(last) if last is not None else None
        self.model_ref = self.store.info(last).model_ref if last is not None else None
        self.session: ChatSession | None = None
        self.turn: Turn | None = None
        self.system_changed = False

    def prompt(
        self,
        engine: Engine,
        *,
        model_name: str,
        model_ref: str | None,
        system: str | None,
        text: str,
        max_tokens: int | None,
        notice: Callable[[str], None] = lambda message: None,
    ) -> PromptInput:
        """The prompt for ``text`` after the conversation (oldest turns dropped to fit)."""
        # No store in the session: the question is saved together with its answer, in one
        # transaction (see save), so concurrent ``ask -c`` turns stay adjacent pairs.
        self.session = ChatSession(
            engine,
            model_name=model_name,
            model_ref=model_ref,
            store=None,
            conversation=self.conversation,
        )
        if system is not None and system != self.session.conversation.system:
            self.session.set_system(system)
            self.system_changed = True
        self.turn = self.session.begin_turn(text, max_tokens=max_tokens)
        dropped = self.turn.prompt.dropped
        if dropped:
            notice(f"dropped the {dropped} oldest exchange(s) to fit the context")
        return self.turn.prompt.input

    def save(self, result: TurnResult) -> None:
        """Save the answer (once), complete or interrupted."""
        if self.session is not None and self.turn is not None:
            turn, self.turn = self.turn, None
            answer = self.session.finish_turn(
                turn, result.pieces, result.stats, interrupted=result.interrupted
            )
            conversation = self.session.conversation
            fields: dict[str, str | None] | None = None
            if conversation.id is None or self.system_changed:
                fields = {"system": conversation.system}
                if conversation.id is None:
                    session = self.session
                    fields |= {"model": session.model_name, "model_ref": session.model_ref}
            pair = [(turn.user, None), (answer, result.stats.to_dict())]
            conversation.id = self.store.append_exchange(conversation.id, pair, create=fields)
