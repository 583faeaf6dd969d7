"""The chat loop: read a message or a slash command, stream the answer, repeat.

The answer is streamed after the prompt has returned, never inside it
(prompt_toolkit's ``patch_stdout`` breaks Rich's colours, rich #1431). Ctrl-C
while an answer streams stops the generation within a token, keeps the partial
answer (marked interrupted) and comes back to the prompt.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from llmcli.context import Environment
from llmcli.engine.base import Engine, GenerationStats, Sampling, TokenPiece
from llmcli.errors import ExitStatus, LlmcliError, Terminated, UsageError
from llmcli.paths import transcripts_dir, user_path
from llmcli.render.sanitize import visible
from llmcli.render.sink import AnswerSink as Sink
from llmcli.render.sink import open_answer_sink, wants_markdown
from llmcli.repl.commands import (
    apply_setting,
    find_command,
    help_lines,
    parse_slash,
    settings_lines,
    unescape_message,
)
from llmcli.repl.inputs import Reader
from llmcli.service.turn import TurnResult, stream_turn
from llmcli.session.conversation import answer_reserve
from llmcli.session.transcript import default_name, load_transcript, save_transcript
from llmcli.session.turns import ChatSession, Turn

if TYPE_CHECKING:
    from prompt_toolkit.formatted_text import AnyFormattedText

ModelLoader = Callable[[str], tuple[Engine, str]]
"""Load the model a ``/model REF`` names; returns the engine and its display name."""


class ChatOutput:
    """Answers on stdout (Markdown in a terminal, raw text otherwise); notices on stderr."""

    def __init__(
        self,
        env: Environment,
        *,
        plain: bool = False,
        quiet: bool = False,
        code_theme: str | None = None,
    ) -> None:
        self.env = env
        self.quiet = quiet
        self.plain = plain
        self.code_theme = code_theme
        self.markdown = wants_markdown(env, plain=plain)

    def sink(self) -> Sink:
        return open_answer_sink(self.env, plain=self.plain, code_theme=self.code_theme)

    def say(self, text: str) -> None:
        if self.env.stdout_isatty:
            text = visible(text)
        self.env.stdout.write(text + "\n")
        self.env.stdout.flush()

    def notice(self, text: str) -> None:
        from llmcli.render.console import make_console

        make_console(self.env, stderr=True, soft_wrap=True).print(
            visible(text), style="dim", markup=False, highlight=False
        )

    def error(self, exc: LlmcliError) -> None:
        from llmcli.render.console import make_console

        console = make_console(self.env, stderr=True, soft_wrap=True)
        console.print(f"error: {visible(str(exc))}", style="red", markup=False, highlight=False)


@dataclass
class Totals:
    """What ``/stats`` sums over the session."""

    answers: int = 0
    tokens: int = 0
    decode_s: float = 0.0
    ttft_s: float = 0.0
    last: GenerationStats | None = None

    def add(self, stats: GenerationStats) -> None:
        self.answers += 1
        self.tokens += stats.generated_tokens
        self.decode_s += max(stats.total_s - stats.ttft_s, 0.0)
        self.ttft_s += stats.ttft_s
        self.last = stats


class ChatRepl:
    def __init__(
        self,
        session: ChatSession,
        sampling: Sampling,
        output: ChatOutput,
        reader: Reader,
        *,
        load_model: ModelLoader | None = None,
    ) -> None:
        self.session = session
        self.sampling = sampling
        self.output = output
        self.reader = reader
        self.load_model = load_model
        self.totals = Totals()
        self.status: int = ExitStatus.OK

    # -- the loop -----------------------------------------------------------------------

    def run(self) -> int:
        """Read and answer until /exit or the end of input; the status of the last error."""
        while True:
            try:
                text = self.reader.read()
            except KeyboardInterrupt:
                continue  # Ctrl-C at the prompt clears the line
            except EOFError:
                return self.status
            try:
                if not self.handle(text):
                    return self.status
            except KeyboardInterrupt:
                self.output.notice("cancelled")

    def handle(self, text: str) -> bool:
        """Act on one input; False means leave."""
        try:
            command = parse_slash(text)
            if command is not None:
                return self.command(*command)
            message = unescape_message(text)
            if message.strip():
                max_tokens = self.sampling.max_tokens
                self.answer(lambda: self.session.begin_turn(message, max_tokens=max_tokens))
        except LlmcliError as exc:
            if exc.status in (ExitStatus.INTERRUPTED, ExitStatus.TERMINATED):
                raise  # these end the chat (SIGTERM while an answer streams)
            self.status = int(exc.status)
            self.output.error(exc)
        return True

    def prompt_text(self) -> AnyFormattedText:
        """The compact prompt: model name and context use, e.g. ``SmolLM2 312/2048> ``."""
        used = self.session.context_used()
        return [
            ("class:model", self.session.model_name),
            ("", " "),
            ("class:usage", f"{used}/{self.session.engine.n_ctx}"),
            ("", "> "),
        ]

    # -- answers ------------------------------------------------------------------------

    def answer(self, start: Callable[[], Turn]) -> None:
        turn = start()
        if turn.prompt.dropped:
            n = turn.prompt.dropped
            self.output.notice(
                f"dropped the {n} oldest exchange{'s' if n != 1 else ''} to fit the "
                f"{self.session.engine.n_ctx}-token context"
            )

        def save(result: TurnResult) -> None:
            self.session.finish_turn(
                turn, result.pieces, result.stats, interrupted=result.interrupted
            )

        result = stream_turn(
            self.session.engine, turn.prompt.input, self.sampling, self.output.sink(), save=save
        )
        if result.stopped == "terminate":
            raise Terminated("terminated")  # ends the chat, the partial answer saved
        self.totals.add(result.stats)
        if result.interrupted:
            self.output.notice("interrupted: the partial answer is kept")
        else:
            self._check_structured(result.pieces, result.stats)
        if not self.output.quiet:
            from llmcli.render.stats import format_stats

            self.output.notice(format_stats(result.stats))

    # -- slash commands -------------------------------------------------------------------

    def command(self, name: str, arg: str) -> bool:
        found = find_command(name)
        if found is None:
            raise UsageError(
                f"unknown command /{name}",
                hint="type /help; start a message with // to send a leading /",
            )
        if found.name == "exit":
            return False
        handler = getattr(self, f"_cmd_{found.name}")
        handler(arg)
        return True

    def _cmd_help(self, arg: str) -> None:
        self.output.say("\n".join(help_lines()))

    def _cmd_clear(self, arg: str) -> None:
        self.session.clear()
        self.output.notice("new conversation")

    def _cmd_system(self, arg: str) -> None:
        if not arg:
            current = self.session.conversation.system
            self.output.say(current if current else "(no system prompt)")
            return
        self.session.set_system(None if arg == "-" else arg)
        self.output.notice("system prompt removed" if arg == "-" else "system prompt set")

    def _cmd_set(self, arg: str) -> None:
        if not arg:
            self.output.say("\n".join(settings_lines(self.sampling)))
            return
        self.output.notice(apply_setting(self.sampling, arg))

    def _cmd_schema(self, arg: str) -> None:
        """``/schema SCHEMA`` constrains the following answers; ``off`` (or ``-``) ends it."""
        from llmcli.structured import parse_schema_arg

        if not arg:
            schema = self.sampling.json_schema
            self.output.say(json.dumps(schema, ensure_ascii=False) if schema else "(no schema)")
            return
        if arg.lower() in ("off", "-", "none"):
            self.sampling.json_schema = None
            self.output.notice("schema removed: answers are free text again")
            return
        candidate = replace(self.sampling, json_schema=parse_schema_arg(arg), grammar=None)
        check = getattr(self.session.engine, "grammar_for", None)
        if check is not None:
            check(candidate)  # a schema llama.cpp cannot compile is refused now, not per turn
        self.sampling.json_schema, self.sampling.grammar = candidate.json_schema, None
        self.output.notice("answers must now match the schema (/schema off to stop)")

    def _check_structured(self, pieces: list[TokenPiece], stats: GenerationStats) -> None:
        """Say so when a constrained answer was cut off or does not validate."""
        schema = self.sampling.json_schema
        if schema is None or stats.finish_reason not in ("stop", "length"):
            return
        from llmcli.structured import checked_answer

        text = "".join(p.text for p in pieces)
        try:
            checked_answer(schema, text, stats.finish_reason, stats.generated_tokens)
        except LlmcliError as exc:
            self.output.error(exc)

    def _cmd_model(self, arg: str) -> None:
        if not arg:
            self.output.say(self.session.model_name)
            return
        if self.load_model is None:
            raise UsageError("switching models is not available here")
        try:
            engine, name = self.load_model(arg)
        except KeyboardInterrupt:
            self.output.notice(f"kept {self.session.model_name}")
            return
        self.session.switch_engine(engine, model_name=name, model_ref=arg)
        self.output.notice(f"now using {name} (context {engine.n_ctx})")

    def _cmd_retry(self, arg: str) -> None:
        max_tokens = self.sampling.max_tokens
        self.answer(lambda: self.session.retry_turn(max_tokens=max_tokens))

    def _cmd_undo(self, arg: str) -> None:
        removed = self.session.undo()
        self.output.notice(
            f"dropped the last exchange ({len(removed)} message{'s' if len(removed) != 1 else ''})"
            if removed
            else "nothing to undo"
        )

    def _cmd_save(self, arg: str) -> None:
        conversation = self.session.conversation
        if not conversation.messages:
            raise UsageError("nothing to save yet", hint="send a message first")
        # No name: a fixed folder, never the current directory (which may be anywhere).
        path = user_path(arg) if arg else transcripts_dir() / default_name(conversation)
        if not arg:
            with contextlib.suppress(OSError):  # if it fails, the write below says why
                path.parent.mkdir(parents=True, exist_ok=True)
        save_transcript(conversation, path, model=self.session.model_name)
        self.output.notice(f"saved {len(conversation.messages)} messages to {path.resolve()}")

    def _cmd_load(self, arg: str) -> None:
        if not arg:
            raise UsageError("/load needs a file", hint="/load FILE (.json or .md from /save)")
        conversation = load_transcript(Path(arg))
        self.session.replace(conversation)
        ident = f" as conversation {conversation.id}" if conversation.id else ""
        self.output.notice(f"loaded {len(conversation.messages)} messages from {arg}{ident}")

    def _cmd_tokens(self, arg: str) -> None:
        session = self.session
        n_ctx = session.engine.n_ctx
        used = session.context_used()
        reserve = answer_reserve(n_ctx, self.sampling.max_tokens)
        dropped = session.conversation.dropped_exchanges()
        rows = [
            ("context used", f"{used} / {n_ctx} tokens ({100 * used / n_ctx:.0f}%)"),
            ("system prompt", f"{session.system_tokens()} tokens"),
            ("kept for the answer", f"{reserve} tokens"),
            ("free for new messages", f"{max(n_ctx - used - reserve, 0)} tokens"),
            ("messages in context", str(len(session.conversation.in_context()))),
        ]
        if dropped:
            rows.append(("dropped (oldest)", f"{dropped} exchange{'s' if dropped != 1 else ''}"))
        self.output.say("\n".join(f"  {k + ':':<24}{v}" for k, v in rows))

    def _cmd_stats(self, arg: str) -> None:
        from llmcli.render.stats import format_stats

        totals = self.totals
        if totals.last is None:
            self.output.say("no answers yet")
            return
        speed = (totals.tokens - totals.answers) / totals.decode_s if totals.decode_s > 0 else 0.0
        self.output.say(
            "\n".join(
                [
                    f"  last answer: {format_stats(totals.last)}",
                    f"  session: {totals.answers} answers, {totals.tokens} tokens, "
                    f"{speed:.1f} tok/s, mean TTFT {totals.ttft_s / totals.answers:.2f} s",
                ]
            )
        )
