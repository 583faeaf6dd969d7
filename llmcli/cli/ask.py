"""``llmcli ask``: one prompt in, one streamed answer out — for terminals, scripts and pipes.

The command validates its flags, calls :mod:`llmcli.service.ask` and renders the
result; streaming, cancelling and saving live in the service layer.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from llmcli.cli import options as opt
from llmcli.cli.base import environment
from llmcli.cli.each import (
    EachCommand,
    EachFileOpt,
    EachFlags,
    EachLineOpt,
    NullOpt,
    ParallelOpt,
    check_each_flags,
    run_each_command,
)
from llmcli.cli.knob_options import KNOB_OPTIONS, KnobFlags, sampling_options
from llmcli.cli.loading import ModelFlags, build_sampling, load_engine, parse_loras
from llmcli.cli.noeffect import check_answer_output, check_raw_system
from llmcli.cli.notices import notify, show_notices
from llmcli.cli.structured_flags import (
    GrammarOpt,
    JsonObjectOpt,
    OutputFlags,
    OutputFormat,
    PromptNameOpt,
    SchemaOpt,
    load_saved,
    resolve_output,
    saved_text,
    structured_answer,
    with_saved_sampling,
)
from llmcli.config import Settings, load_settings, settings_for_model
from llmcli.context import Environment
from llmcli.engine.base import Sampling
from llmcli.errors import UsageError
from llmcli.render.json_out import answer_json, dumps, terminal_safe, write_json
from llmcli.render.sanitize import visible
from llmcli.render.sink import AnswerSink as Sink
from llmcli.render.sink import open_answer_sink
from llmcli.service.ask import (
    AskRequest,
    ask_prompt,
    build_messages,
    raise_for,
    run_ask,
)
from llmcli.service.continued import ContinuedAsk
from llmcli.service.turn import TurnResult
from llmcli.session.inputs import EncodingErrors, combine_prompt, read_stdin
from llmcli.structured import AnswerInvalid

if TYPE_CHECKING:
    from llmcli.store.prompts import SavedPrompt

__all__ = ["ask", "build_messages", "notify", "open_sink"]


class _Silent:
    """``--json`` collects the answer and prints it once at the end."""

    def feed(self, text: str) -> None:
        pass

    def finish(self) -> None:
        pass

    def abort(self) -> None:
        pass


def open_sink(
    env: Environment, *, plain: bool, json_mode: bool, code_theme: str | None = None
) -> Sink:
    """``--json`` collects silently; otherwise Markdown in a terminal, raw text elsewhere."""
    if json_mode:
        return _Silent()
    return open_answer_sink(env, plain=plain, code_theme=code_theme)


@sampling_options
def ask(
    cli: typer.Context,
    prompt: Annotated[
        list[str] | None,
        typer.Argument(
            help="The prompt. Piped stdin comes first, then these words.", show_default=False
        ),
    ] = None,
    model: opt.ModelOpt = None,
    system: opt.SystemOpt = None,
    prompt_name: PromptNameOpt = None,
    knobs: KnobFlags = KNOB_OPTIONS,
    stop: opt.StopOpt = None,
    raw: opt.RawOpt = False,
    continue_conversation: Annotated[
        bool,
        typer.Option(
            "--continue",
            "-c",
            help="Add this turn to the most recent conversation (see 'llmcli history'), "
            "with its model unless -m is given; both messages are saved.",
        ),
    ] = False,
    ctx: opt.CtxOpt = None,
    gpu_layers: opt.GpuLayersOpt = None,
    threads: opt.ThreadsOpt = None,
    chat_template: opt.ChatTemplateOpt = None,
    chat_format: opt.ChatFormatOpt = None,
    lora: opt.LoraOpt = None,
    engine_name: opt.EngineOpt = None,
    base_url: opt.BaseUrlOpt = None,
    keep_alive: opt.KeepAliveOpt = None,
    json_output: opt.AnswerJsonOpt = False,
    schema: SchemaOpt = None,
    json_object: JsonObjectOpt = False,
    grammar: GrammarOpt = None,
    logprobs: Annotated[
        int,
        typer.Option(
            "--logprobs",
            min=0,
            max=20,
            help="With --json: each token's log-probability and the top K alternatives.",
            rich_help_panel=opt.OUTPUT,
        ),
    ] = 0,
    stats: opt.StatsOpt = False,
    show_probs: Annotated[
        bool,
        typer.Option(
            "--show-probs",
            help="In a terminal, colour each generated token by its probability (the softmax "
            "of the raw logits); the legend goes to stderr. Output in a pipe is unchanged.",
            rich_help_panel=opt.OUTPUT,
        ),
    ] = False,
    plain: opt.PlainOpt = False,
    encoding_errors: opt.EncodingErrorsOpt = "strict",
    verbose: opt.VerboseOpt = False,
    each_line: EachLineOpt = False,
    each_file: EachFileOpt = None,
    parallel: ParallelOpt = None,
    null: NullOpt = False,
) -> None:
    """Ask one question and stream the answer.

    Examples:

      llmcli ask "Why is the sky blue?"

      git diff | llmcli ask "write a commit message"

      printf '1, 2, 3,' | llmcli ask --raw --greedy --max-tokens 4

      llmcli ask --schema 'name, age int' 'Invent a person' | jq .name

      llmcli ask --each-line --json "Classify the sentiment:" < reviews.txt
    """
    env = environment(cli)
    _check_flags(encoding_errors, raw=raw, system=system, continued=continue_conversation)
    check_answer_output(json_output=json_output, logprobs=logprobs, show_probs=show_probs)
    saved = load_saved(prompt_name)
    output = resolve_output(OutputFlags(schema, json_object, grammar), saved)
    if saved is not None:
        model, system = model or saved.model, system if system is not None else saved.system
    continued = ContinuedAsk() if continue_conversation else None
    model = model or (continued.model_ref if continued is not None else None)
    settings = _settings(env, model)
    each = EachFlags(each_line, list(each_file or []), parallel, null)
    check_each_flags(each, json_output, continue_conversation, show_probs, output, saved)
    flags = ModelFlags(
        model, ctx, gpu_layers, threads, chat_template, chat_format, verbose, parse_loras(lora)
    )
    flags.engine, flags.base_url, flags.keep_alive = engine_name, base_url, keep_alive
    knobs.stop, knobs.logprobs = tuple(stop or ()), logprobs
    sampling = build_sampling(with_saved_sampling(knobs, saved), settings)
    output.apply(sampling)
    if each.active:  # many prompts at once: llmcli.service.each
        command = EachCommand(env, prompt or [], system, raw, json_output, stats, encoding_errors)
        return run_each_command(command, each, flags, settings, sampling)
    if continued is None and settings.save_ask and not raw:  # history.save_ask: README
        continued = ContinuedAsk(fresh=True)
    text = _read_prompt(env, prompt or [], encoding_errors, saved)
    engine, resolved = load_engine(flags, settings, env)
    show_notices(env, engine)
    request = AskRequest(
        text, system, settings.system, raw, continued, resolved.name, flags.model or settings.model
    )
    ids = ask_prompt(engine, request, sampling, lambda message: notify(env, message))
    quiet = json_output or output.constrained  # collected, validated, printed at the end
    sink = _sink(env, sampling, show_probs, quiet, plain, settings.theme)
    result = run_ask(engine, request, ids, sampling, sink)
    _report(env, result, output, (stats, json_output, logprobs), (resolved.name, request.model_ref))
    raise_for(result)


def _check_flags(encoding_errors: str, *, raw: bool, system: str | None, continued: bool) -> None:
    if encoding_errors not in ("strict", "replace"):
        raise UsageError("--encoding-errors must be strict or replace")
    check_raw_system(raw, system)
    if raw and continued:
        raise UsageError("--continue needs the chat template", hint="drop --raw")


def _settings(env: Environment, model: str | None) -> Settings:
    settings = load_settings(env.environ)
    return settings_for_model(settings, model or settings.model)


def _read_prompt(
    env: Environment, words: list[str], encoding_errors: str, saved: SavedPrompt | None
) -> str:
    """Piped stdin, then the words (filled into a saved prompt's text with ``-p NAME``)."""
    errors: EncodingErrors = "replace" if encoding_errors == "replace" else "strict"
    stdin_text = None if env.stdin_isatty else read_stdin(sys.stdin.buffer, errors=errors)
    if saved is not None:
        return saved_text(saved, stdin_text, words)
    return combine_prompt(stdin_text, words)


def _sink(
    env: Environment,
    sampling: Sampling,
    show_probs: bool,
    json_output: bool,
    plain: bool,
    theme: str | None,
) -> Sink:
    """``--show-probs`` in a terminal colours tokens (and needs their log-probabilities)."""
    if show_probs and not json_output:
        from llmcli.render.tokens import open_probability_stream

        prob_sink = open_probability_stream(env)
        if prob_sink is not None:
            sampling.logprobs = max(sampling.logprobs, 1)
            return prob_sink
    return open_sink(env, plain=plain, json_mode=json_output, code_theme=theme)


def _report(
    env: Environment,
    result: TurnResult,
    output: OutputFormat,
    shown: tuple[bool, bool, int],
    model: tuple[str, str | None],
) -> None:
    """The stats line, and the answer's JSON (``--json``), or the validated structured
    answer alone (``--schema``/``--json-object``/``--grammar``) when it completed."""
    stats, json_output, logprobs = shown
    if output.constrained and not result.interrupted and result.stats.finish_reason != "error":
        _report_structured(env, output, result, stats, json_output, model)
        return
    if json_output:
        write_json(env.stdout, answer_json(*model, result, logprobs))
    if stats:
        from llmcli.render.stats import format_stats

        notify(env, format_stats(result.stats))


def _report_structured(
    env: Environment,
    output: OutputFormat,
    result: TurnResult,
    stats: bool,
    json_output: bool,
    model: tuple[str, str | None],
) -> None:
    """The validated JSON alone on stdout; with --json, inside the usual object.

    An answer that fails (cut off, not JSON, not valid) prints nothing, except with
    --json: the object then carries the text and the ``error``; either way exit 65.
    """
    if stats:
        from llmcli.render.stats import format_stats

        notify(env, format_stats(result.stats))
    failure: AnswerInvalid | None = None
    try:
        line = structured_answer(output, result.text, result.stats)
    except AnswerInvalid as exc:
        if not json_output:
            raise
        failure, line = exc, ""
    if json_output:
        data = answer_json(*model, result, 0)
        data["value"] = json.loads(line) if line and output.schema is not None else None
        if failure is not None:
            data["error"] = failure.message
        line = dumps(data)
    if env.stdout_isatty:
        line = terminal_safe(line) if output.schema is not None or json_output else visible(line)
    env.stdout.write(line + "\n")
    env.stdout.flush()
    if failure is not None:
        raise failure
