"""``llmcli chat``: an interactive conversation, saved as it goes (and ``ask -c``'s helper)."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated

import typer

from llmcli.cli import options as opt
from llmcli.cli.base import app
from llmcli.cli.loading import (
    ModelFlags,
    SamplingFlags,
    build_sampling,
    load_engine,
    parse_loras,
)
from llmcli.config import Settings, load_settings, settings_for_model
from llmcli.context import Environment
from llmcli.engine.base import Engine, GenerationStats, Sampling, TokenPiece
from llmcli.errors import LlmcliError, UsageError

if TYPE_CHECKING:
    from llmcli.repl.loop import ModelLoader
    from llmcli.session.conversation import ChatEngine, Conversation
    from llmcli.session.history import HistoryStore
    from llmcli.session.turns import ChatSession, Turn

OverflowOpt = Annotated[
    str,
    typer.Option(
        "--on-overflow",
        metavar="drop-oldest|error",
        help="When the next turn does not fit the context: drop the oldest exchanges "
        "(never the system prompt), or stop with an error.",
        rich_help_panel=opt.MODEL,
    ),
]


def as_chat_engine(engine: Engine) -> ChatEngine:
    from llmcli.session.conversation import ChatEngine

    if not isinstance(engine, ChatEngine):
        raise UsageError(
            "this engine cannot hold a conversation", hint="chat with a local GGUF model"
        )
    return engine


def _open_history(
    continue_last: bool, resume: int | None
) -> tuple[HistoryStore, Conversation | None, str | None]:
    """The history database (checked now, before the model loads) and the conversation to resume."""
    from llmcli.session.history import HistoryStore

    store = HistoryStore()
    last = store.last_id()  # opens the database: a corrupt file fails here, clearly
    if resume is None and not continue_last:
        return store, None, None
    target = resume if resume is not None else last
    if target is None:
        raise LlmcliError("there is no conversation to continue", hint="start one: llmcli chat")
    info = store.info(target)
    return store, store.load(target), info.model_ref


@app.command(rich_help_panel="Generate")
def chat(
    model: opt.ModelOpt = None,
    system: opt.SystemOpt = None,
    temperature: opt.TemperatureOpt = None,
    top_p: opt.TopPOpt = None,
    top_k: opt.TopKOpt = None,
    min_p: opt.MinPOpt = None,
    repeat_penalty: opt.RepeatPenaltyOpt = None,
    seed: opt.SeedOpt = None,
    max_tokens: opt.MaxTokensOpt = None,
    stop: opt.StopOpt = None,
    greedy: opt.GreedyOpt = False,
    continue_last: Annotated[
        bool,
        typer.Option("--continue", "-c", help="Resume the most recent conversation."),
    ] = False,
    resume: Annotated[
        int | None,
        typer.Option(
            "--resume", metavar="ID", help="Resume conversation ID (see 'llmcli history list')."
        ),
    ] = None,
    on_overflow: OverflowOpt = "drop-oldest",
    ctx: opt.CtxOpt = None,
    gpu_layers: opt.GpuLayersOpt = None,
    threads: opt.ThreadsOpt = None,
    chat_template: opt.ChatTemplateOpt = None,
    chat_format: opt.ChatFormatOpt = None,
    lora: opt.LoraOpt = None,
    engine_name: opt.EngineOpt = None,
    base_url: opt.BaseUrlOpt = None,
    plain: opt.PlainOpt = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="No stats line after answers, no banner.",
            rich_help_panel=opt.OUTPUT,
        ),
    ] = False,
    verbose: opt.VerboseOpt = False,
) -> None:
    """Chat with a model: history, slash commands (/help), saved conversations.

    Enter sends, Alt-Enter adds a line, Up/Down and Ctrl-R recall input.

    Ctrl-C stops an answer, Ctrl-D leaves.

    Piped stdin: one message per line, plain answers.

    Examples:

      llmcli chat -s "Answer briefly."

      llmcli chat --continue

      printf 'Hi!\\nWhat did I just say?\\n' | llmcli chat --greedy
    """
    from llmcli.session.conversation import check_overflow_policy
    from llmcli.session.turns import ChatSession

    env = Environment()
    policy = check_overflow_policy(on_overflow)
    if continue_last and resume is not None:
        raise UsageError("--continue and --resume both given", hint="pass only one of them")
    store, conversation, stored_ref = _open_history(continue_last, resume)
    settings = load_settings(env.environ)
    settings = settings_for_model(settings, model or stored_ref or settings.model)
    flags = ModelFlags(
        model=model or stored_ref,
        ctx=ctx,
        gpu_layers=gpu_layers,
        threads=threads,
        chat_template=chat_template,
        chat_format=chat_format,
        verbose=verbose,
        loras=parse_loras(lora),
        engine=engine_name,
        base_url=base_url,
    )
    sampling = build_sampling(
        SamplingFlags(
            temperature, top_p, top_k, min_p, repeat_penalty, seed, max_tokens, stop, greedy
        ),
        settings,
    )
    engine, resolved = load_engine(flags, settings, env)
    session = ChatSession(
        as_chat_engine(engine),
        model_name=resolved.name,
        model_ref=flags.model or settings.model,
        store=store,
        conversation=conversation,
        policy=policy,
    )
    if system is not None:
        session.set_system(system)
    elif conversation is None:
        session.conversation.system = settings.system
    status = _run_repl(
        env, session, sampling, _model_loader(flags, settings, env), plain, quiet, settings.theme
    )
    session.engine.close()
    store.close()
    if status:
        raise typer.Exit(status)


def _model_loader(flags: ModelFlags, settings: Settings, env: Environment) -> ModelLoader:
    """``/model REF``: the same hardware flags, another model (its own chat template)."""

    def load(ref: str) -> tuple[ChatEngine, str]:
        other = replace(flags, model=ref, chat_template=None, chat_format=None)
        engine, resolved = load_engine(other, settings, env)
        return as_chat_engine(engine), resolved.name

    return load


def _run_repl(
    env: Environment,
    session: ChatSession,
    sampling: Sampling,
    load_model: ModelLoader,
    plain: bool,
    quiet: bool,
    code_theme: str | None = None,
) -> int:
    from llmcli import paths
    from llmcli.repl.inputs import LineReader, TerminalReader
    from llmcli.repl.loop import ChatOutput, ChatRepl

    output = ChatOutput(env, plain=plain, quiet=quiet, code_theme=code_theme)
    for notice in getattr(session.engine, "notices", ()):
        output.notice(f"note: {notice}")
    repl = ChatRepl(session, sampling, output, LineReader(sys.stdin.buffer), load_model=load_model)
    if not (env.stdin_isatty and env.stdout_isatty):
        return repl.run()  # a script learns of a failed turn from the exit status
    repl.reader = TerminalReader(paths.history_file(), repl.prompt_text)
    if not quiet:
        output.notice(_banner(session))
    repl.run()  # a person saw each error as it happened
    return 0


def _banner(session: ChatSession) -> str:
    conversation = session.conversation
    resumed = (
        f" · conversation {conversation.id} resumed ({len(conversation.messages)} messages)"
        if conversation.id is not None
        else ""
    )
    return (
        f"{session.model_name} · context {session.engine.n_ctx}{resumed} · "
        "/help for commands, Ctrl-D to leave"
    )


class ContinuedAsk:
    """``llmcli ask -c``: one more turn in the most recent conversation, both messages saved.

    With no conversation yet, the turn starts one. Without ``-m`` the conversation's
    own model is used, so ``ask -c`` after a chat goes on with the model of that chat.
    """

    def __init__(self) -> None:
        from llmcli.session.history import HistoryStore

        self.store = HistoryStore()
        last = self.store.last_id()
        self.conversation = self.store.load(last) if last is not None else None
        self.model_ref = self.store.info(last).model_ref if last is not None else None
        self.session: ChatSession | None = None
        self.turn: Turn | None = None
        self.system_changed = False

    def prompt(
        self,
        env: Environment,
        engine: Engine,
        *,
        model_name: str,
        model_ref: str | None,
        system: str | None,
        text: str,
        max_tokens: int | None,
    ) -> list[int]:
        """The prompt ids for ``text`` after the conversation (oldest turns dropped to fit)."""
        from llmcli.session.turns import ChatSession

        # No store in the session: the question is saved together with its answer, in one
        # transaction (see save), so concurrent ``ask -c`` turns stay adjacent pairs.
        self.session = ChatSession(
            as_chat_engine(engine),
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
            from llmcli.cli.ask import notify

            notify(env, f"dropped the {dropped} oldest exchange(s) to fit the context")
        return self.turn.prompt.ids

    def save(self, pieces: list[TokenPiece], stats: GenerationStats, *, interrupted: bool) -> None:
        """Save the answer (once), complete or interrupted."""
        if self.session is not None and self.turn is not None:
            turn, self.turn = self.turn, None
            answer = self.session.finish_turn(turn, pieces, stats, interrupted=interrupted)
            conversation = self.session.conversation
            fields: dict[str, str | None] | None = None
            if conversation.id is None or self.system_changed:
                fields = {"system": conversation.system}
                if conversation.id is None:
                    session = self.session
                    fields |= {"model": session.model_name, "model_ref": session.model_ref}
            conversation.id = self.store.append_exchange(
                conversation.id, [(turn.user, None), (answer, stats.to_dict())], create=fields
            )
