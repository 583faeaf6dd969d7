"""``llmcli ask``: one prompt in, one streamed answer out — for terminals, scripts and pipes."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmcli.cli import options as opt
from llmcli.cli.base import app
from llmcli.cli.loading import ModelFlags, SamplingFlags, build_sampling, load_engine, parse_loras
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
from llmcli.config import load_settings, settings_for_model
from llmcli.context import Environment
from llmcli.engine.base import Engine, Generation, Message, TokenPiece
from llmcli.errors import Interrupted, ServiceUnavailable, Terminated, UsageError
from llmcli.render.sink import AnswerSink as Sink
from llmcli.render.sink import open_answer_sink
from llmcli.session.budget import check_prompt_fits
from llmcli.session.inputs import EncodingErrors, combine_prompt, read_stdin
from llmcli.structured import AnswerInvalid

if TYPE_CHECKING:
    from llmcli.cli.chat import ContinuedAsk


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


def notify(env: Environment, message: str) -> None:
    """A dim notice on stderr (plain in a pipe)."""
    from llmcli.render.console import make_console
    from llmcli.render.sanitize import visible

    make_console(env, stderr=True).print(
        visible(message), style="dim", markup=False, highlight=False
    )


def build_messages(system: str | None, text: str) -> list[Message]:
    messages = [Message("system", system)] if system else []
    messages.append(Message("user", text))
    return messages


def stream_answer(generation: Generation, sink: Sink, collect: list[TokenPiece]) -> None:
    """Feed every piece to the sink; on Ctrl-C, keep what was shown and re-raise."""
    feed_token = getattr(sink, "feed_token", None)  # sinks that colour by probability
    try:
        for piece in generation:
            collect.append(piece)
            if feed_token is not None:
                feed_token(piece.text, piece.logprob)
            elif piece.text:
                sink.feed(piece.text)
    except BaseException:  # Ctrl-C, or a server failing before its first token
        generation.cancel()
        close = getattr(generation.pieces, "close", None)
        if close is not None:
            close()  # waits for the engine to stop, so its stats are final
        sink.abort()
        raise
    sink.finish()


def answer_json(
    model_name: str, generation: Generation, pieces: list[TokenPiece], logprobs: int
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "model": model_name,
        "text": "".join(p.text for p in pieces),
        "finish_reason": generation.stats.finish_reason,
        "stats": generation.stats.to_dict(),
    }
    if logprobs:
        result["tokens"] = [
            {
                "id": p.token_id if p.token_id >= 0 else None,  # remote servers send no ids
                "text": p.text,
                "logprob": p.logprob,
                "top": [{"token": t, "logprob": lp} for t, lp in (p.top or [])],
            }
            for p in pieces
            if p.logprob is not None
        ]
    return result


@app.command(rich_help_panel="Generate")
def ask(
    prompt: Annotated[
        list[str] | None,
        typer.Argument(
            help="The prompt. Piped stdin comes first, then these words.", show_default=False
        ),
    ] = None,
    model: opt.ModelOpt = None,
    system: opt.SystemOpt = None,
    prompt_name: PromptNameOpt = None,
    temperature: opt.TemperatureOpt = None,
    top_p: opt.TopPOpt = None,
    top_k: opt.TopKOpt = None,
    min_p: opt.MinPOpt = None,
    repeat_penalty: opt.RepeatPenaltyOpt = None,
    seed: opt.SeedOpt = None,
    max_tokens: opt.MaxTokensOpt = None,
    stop: opt.StopOpt = None,
    greedy: opt.GreedyOpt = False,
    raw: Annotated[
        bool, typer.Option("--raw", help="Plain completion: no chat template, no system prompt.")
    ] = False,
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
    json_output: opt.JsonOpt = False,
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
) -> None:
    """Ask one question and stream the answer.

    Examples:

      llmcli ask "Why is the sky blue?"

      git diff | llmcli ask "write a commit message"

      printf '1, 2, 3,' | llmcli ask --raw --greedy --max-tokens 4

      llmcli ask --schema 'name, age int' 'Invent a person' | jq .name
    """
    env = Environment()
    if encoding_errors not in ("strict", "replace"):
        raise UsageError("--encoding-errors must be strict or replace")
    if raw and system:
        raise UsageError("--system has no effect with --raw", hint="drop one of them")
    if raw and continue_conversation:
        raise UsageError("--continue needs the chat template", hint="drop --raw")
    saved = load_saved(prompt_name)
    output = resolve_output(OutputFlags(schema, json_object, grammar), saved)
    if saved is not None:
        model = model or saved.model
        system = system if system is not None else saved.system
    continued = _continued() if continue_conversation else None
    if continued is not None and model is None:
        model = continued.model_ref
    settings = load_settings(env.environ)
    settings = settings_for_model(settings, model or settings.model)
    stdin_text = (
        None if env.stdin_isatty else read_stdin(sys.stdin.buffer, errors=_enc(encoding_errors))
    )
    text = (
        saved_text(saved, stdin_text, prompt or [])
        if saved is not None
        else combine_prompt(stdin_text, prompt or [])
    )
    flags = ModelFlags(
        model, ctx, gpu_layers, threads, chat_template, chat_format, verbose, parse_loras(lora)
    )
    flags.engine, flags.base_url = engine_name, base_url
    flags.keep_alive = keep_alive
    sampling_flags = SamplingFlags(
        temperature, top_p, top_k, min_p, repeat_penalty, seed, max_tokens, stop, greedy, logprobs
    )
    sampling = build_sampling(with_saved_sampling(sampling_flags, saved), settings)
    output.apply(sampling)
    engine, resolved = load_engine(flags, settings, env)
    _show_notices(env, engine)
    system_prompt = system if system is not None else settings.system
    if continued is not None:
        ids = continued.prompt(
            env,
            engine,
            model_name=resolved.name,
            model_ref=flags.model or settings.model,
            system=system,
            text=text,
            max_tokens=sampling.max_tokens,
        )
    else:
        ids = (
            engine.text_prompt(text)
            if raw
            else engine.chat_prompt(build_messages(system_prompt, text))
        )
    check_prompt_fits(len(ids), engine.n_ctx)
    quiet = json_output or output.constrained  # collected, validated, printed at the end
    prob_sink = _probability_sink(env) if show_probs and not quiet else None
    if prob_sink is not None:
        sampling.logprobs = max(sampling.logprobs, 1)
    generation = engine.generate(ids, sampling)
    pieces: list[TokenPiece] = []
    sink = prob_sink or open_sink(env, plain=plain, json_mode=quiet, code_theme=settings.theme)
    try:
        stream_answer(generation, sink, pieces)
    except (KeyboardInterrupt, Terminated) as stop:  # SIGTERM: the same cleanup, exit 143
        if continued is not None:
            continued.save(pieces, generation.stats, interrupted=True)
        _report(env, generation, stats, json_output, resolved.name, pieces, logprobs)
        if isinstance(stop, Terminated):
            raise
        raise Interrupted("interrupted") from None
    if continued is not None:
        continued.save(pieces, generation.stats, interrupted=False)
    if generation.stats.finish_reason == "error":  # a server failed mid-answer
        _report(env, generation, stats, json_output, resolved.name, pieces, logprobs)
        raise ServiceUnavailable(
            generation.stats.error or "generation failed",
            hint="the answer above is incomplete",
        )
    if output.constrained:
        _report_structured(env, output, generation, stats, json_output, resolved.name, pieces)
        return
    _report(env, generation, stats, json_output, resolved.name, pieces, logprobs)


def _report_structured(
    env: Environment,
    output: OutputFormat,
    generation: Generation,
    stats: bool,
    json_output: bool,
    model_name: str,
    pieces: list[TokenPiece],
) -> None:
    """The validated JSON alone on stdout; with --json, inside the usual object.

    An answer that fails (cut off, not JSON, not valid) prints nothing, except with
    --json: the object then carries the text and the ``error``; either way exit 65.
    """
    if stats:
        from llmcli.render.stats import format_stats

        notify(env, format_stats(generation.stats))
    failure: AnswerInvalid | None = None
    try:
        line = structured_answer(output, "".join(p.text for p in pieces), generation.stats)
    except AnswerInvalid as exc:
        if not json_output:
            raise
        failure, line = exc, ""
    if json_output:
        result = answer_json(model_name, generation, pieces, 0)
        result["value"] = json.loads(line) if line and output.schema is not None else None
        if failure is not None:
            result["error"] = failure.message
        line = json.dumps(result, ensure_ascii=False)
    env.stdout.write(line + "\n")
    env.stdout.flush()
    if failure is not None:
        raise failure


def _continued() -> ContinuedAsk:
    from llmcli.cli.chat import ContinuedAsk

    return ContinuedAsk()


def _probability_sink(env: Environment) -> Sink | None:
    from llmcli.render.tokens import open_probability_stream

    return open_probability_stream(env)


def _enc(value: str) -> EncodingErrors:
    return "replace" if value == "replace" else "strict"


def _show_notices(env: Environment, engine: Engine) -> None:
    for notice in getattr(engine, "notices", ()):
        notify(env, f"note: {notice}")


def _report(
    env: Environment,
    generation: Generation,
    stats: bool,
    json_output: bool,
    model_name: str,
    pieces: list[TokenPiece],
    logprobs: int,
) -> None:
    if json_output:
        env.stdout.write(
            json.dumps(answer_json(model_name, generation, pieces, logprobs), ensure_ascii=False)
            + "\n"
        )
        env.stdout.flush()
    if stats:
        from llmcli.render.stats import format_stats

        notify(env, format_stats(generation.stats))
