"""``ask`` without the terminal: the prompt for one question, and streaming its answer.

The command reads flags and stdin and renders; this builds the prompt (raw text,
a chat with a system prompt, or the next turn of the last conversation), checks
that it fits, and streams the answer through :func:`llmcli.service.turn.stream_turn`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llmcli.engine.base import Engine, Message, Prompt, PromptInput, Sampling, encode
from llmcli.errors import Interrupted, ServiceUnavailable, Terminated
from llmcli.render.sink import AnswerSink
from llmcli.service.continued import ContinuedAsk
from llmcli.service.turn import TurnResult, stream_turn
from llmcli.session.budget import check_prompt_fits


@dataclass
class AskRequest:
    """One question as the user asked it."""

    text: str
    system: str | None = None
    """``--system`` as given (``None``: not given)."""
    default_system: str | None = None
    """The configured system prompt, used when ``--system`` is not given."""
    raw: bool = False
    continued: ContinuedAsk | None = None
    model_name: str = ""
    model_ref: str | None = None


def build_messages(system: str | None, text: str) -> list[Message]:
    messages = [Message("system", system)] if system else []
    messages.append(Message("user", text))
    return messages


def ask_prompt(
    engine: Engine,
    request: AskRequest,
    sampling: Sampling,
    notice: Callable[[str], None],
) -> PromptInput:
    """The prompt for the request; a local prompt is checked against the context here
    (a server enforces its own window and says so)."""
    if request.continued is not None:
        system = request.system
        if system is None and request.continued.conversation is None:
            system = request.default_system  # a new conversation gets the configured one
        prompt: PromptInput = request.continued.prompt(
            engine,
            model_name=request.model_name,
            model_ref=request.model_ref,
            system=system,
            text=request.text,
            max_tokens=sampling.max_tokens,
            notice=notice,
        )
    elif request.raw:
        prompt = Prompt.raw(request.text)
    else:
        system = request.system if request.system is not None else request.default_system
        prompt = Prompt.chat(build_messages(system, request.text))
    tokens = engine.token_level()
    if tokens is None:
        return prompt
    ids = encode(tokens, prompt)
    check_prompt_fits(len(ids), engine.n_ctx)
    return ids


def run_ask(
    engine: Engine, request: AskRequest, prompt: PromptInput, sampling: Sampling, sink: AnswerSink
) -> TurnResult:
    save = request.continued.save if request.continued is not None else None
    return stream_turn(engine, prompt, sampling, sink, save=save)


def raise_for(result: TurnResult) -> None:
    """After the answer is reported: exit 130 / 143 for Ctrl-C / SIGTERM, 69 for a failed
    server (the answer above is incomplete)."""
    if result.stopped == "terminate":
        raise Terminated("terminated")
    if result.stopped == "interrupt":
        raise Interrupted("interrupted")
    if result.stats.finish_reason == "error":  # a server failed mid-answer
        raise ServiceUnavailable(
            result.stats.error or "generation failed", hint="the answer above is incomplete"
        )
