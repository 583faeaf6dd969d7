"""One answer, streamed: the function ``ask``, ``ask -c`` and the chat REPL all use.

It starts the generation, feeds every piece to the sink, and on Ctrl-C or SIGTERM
cancels the engine, waits until it has stopped (so the stats are final), keeps
what was shown and saves it as interrupted. The caller decides what an interrupt
means (``ask`` exits 130, the REPL returns to its prompt) from the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from llmcli.engine.base import (
    Engine,
    Generation,
    GenerationStats,
    PromptInput,
    Sampling,
    TokenPiece,
)
from llmcli.errors import Terminated
from llmcli.render.sink import AnswerSink, TokenSink

Stop = Literal["interrupt", "terminate"]


@dataclass
class TurnResult:
    """What one turn produced; ``stopped`` says whether Ctrl-C or SIGTERM ended it."""

    pieces: list[TokenPiece] = field(default_factory=list)
    stats: GenerationStats = field(default_factory=GenerationStats)
    stopped: Stop | None = None
    failed: bool = False
    """A failure ended it (raised to the caller after saving)."""

    @property
    def text(self) -> str:
        return "".join(piece.text for piece in self.pieces)

    @property
    def interrupted(self) -> bool:
        """Saved as interrupted: stopped by the user, a signal, or a failure."""
        return self.stopped is not None or self.failed


Save = Callable[[TurnResult], None]
"""Records the answer (complete or interrupted); called once per turn that streamed."""


def stream_turn(
    engine: Engine,
    prompt: PromptInput,
    sampling: Sampling,
    sink: AnswerSink,
    *,
    save: Save | None = None,
) -> TurnResult:
    """Generate after ``prompt`` into ``sink``; Ctrl-C and SIGTERM end it, saved as interrupted.

    Any other failure (a server refusing before its first token) is raised after
    the engine and the sink are stopped and what came is saved as interrupted, so
    a conversation never holds a question without an answer.
    """
    generation = engine.generate(prompt, sampling)
    result = TurnResult(stats=generation.stats)
    try:
        feed(generation, sink, result.pieces)
    except KeyboardInterrupt:
        result.stopped = "interrupt"
    except Terminated:
        result.stopped = "terminate"
    except BaseException:
        result.failed = True
        if save is not None:
            save(result)
        raise
    if save is not None:
        save(result)
    return result


def feed(generation: Generation, sink: AnswerSink, collect: list[TokenPiece]) -> None:
    """Feed every piece to the sink; on any exception stop the engine, close the sink, re-raise."""
    by_token = sink if isinstance(sink, TokenSink) else None  # sinks that colour by probability
    try:
        for piece in generation:
            collect.append(piece)
            if by_token is not None:
                by_token.feed_token(piece.text, piece.logprob)
            elif piece.text:
                sink.feed(piece.text)
    except BaseException:  # Ctrl-C, or a server failing before its first token
        generation.cancel()
        generation.close()  # waits for the engine to stop, so its stats are final
        sink.abort()
        raise
    sink.finish()
