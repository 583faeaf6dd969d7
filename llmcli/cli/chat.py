"""``llmcli chat``: an interactive conversation, saved as it goes."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated

import typer

from llmcli.cli import options as opt
from llmcli.cli.base import environment
from llmcli.cli.knob_options import KNOB_OPTIONS, KnobFlags, sampling_options
from llmcli.cli.loading import ModelFlags, build_sampling, load_engine, parse_loras
from llmcli.config import Settings, load_settings, settings_for_model
from llmcli.context import Environment
from llmcli.engine.base import Engine, Sampling
from llmcli.errors import LlmcliError, UsageError

if TYPE_CHECKING:
    from llmcli.repl.loop import ModelLoader
    from llmcli.session.conversation import Conversation
    from llmcli.session.history import HistoryStore
    from llmcli.session.turns import ChatSession

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


@sampling_options
def chat(
    cli: typer.Context,
    model: opt.ModelOpt = None,
    system: opt.SystemOpt = None,
    knobs: KnobFlags = KNOB_OPTIONS,
    stop: opt.StopOpt = None,
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
    keep_alive: opt.KeepAliveOpt = None,
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

    env = environment(cli)
    policy = check_overflow_policy(on_overflow)
    if continue_last and resume is not None:
        raise UsageError("--continue and --resume both given", hint="pass only one of them")
    store, conversation, stored_ref = _open_history(continue_last, resume)
    settings = load_settings(env.environ)
    settings = settings_for_model(settings, model or stored_ref or settings.model)
    flags = ModelFlags(
        model or stored_ref, ctx, gpu_layers, threads, chat_template, chat_format, verbose
    )
    flags.loras, flags.engine = parse_loras(lora), engine_name
    flags.base_url, flags.keep_alive = base_url, keep_alive
    knobs.stop = tuple(stop or ())
    sampling = build_sampling(knobs, settings)
    engine, resolved = load_engine(flags, settings, env)
    session = ChatSession(
        engine, model_name=resolved.name, model_ref=flags.model or settings.model,
        store=store, conversation=conversation, policy=policy,
    )  # fmt: skip
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

    def load(ref: str) -> tuple[Engine, str]:
        other = replace(flags, model=ref, chat_template=None, chat_format=None)
        engine, resolved = load_engine(other, settings, env)
        return engine, resolved.name

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
    for notice in session.engine.notices:
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
