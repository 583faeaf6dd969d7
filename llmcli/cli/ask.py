"""``llmcli ask``: one prompt in, one streamed answer out — for terminals, scripts and pipes."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Protocol

import typer

from llmcli.cli import options as opt
from llmcli.cli.base import app
from llmcli.cli.loading import ModelFlags, SamplingFlags, build_sampling, load_engine
from llmcli.config import load_settings
from llmcli.context import Environment
from llmcli.engine.base import Engine, Generation, Message, TokenPiece
from llmcli.errors import Interrupted, UsageError
from llmcli.session.budget import check_prompt_fits
from llmcli.session.inputs import EncodingErrors, combine_prompt, read_stdin


class Sink(Protocol):
    def feed(self, text: str) -> None: ...
    def finish(self) -> None: ...
    def abort(self) -> None: ...


class _Silent:
    """``--json`` collects the answer and prints it once at the end."""

    def feed(self, text: str) -> None:
        pass

    def finish(self) -> None:
        pass

    def abort(self) -> None:
        pass


def open_sink(env: Environment, *, plain: bool, json_mode: bool) -> Sink:
    """Rich markdown in a terminal; raw text in a pipe, with ``--plain``, or ``TERM=dumb``."""
    from llmcli.render.plain import PlainWriter

    if json_mode:
        return _Silent()
    if plain or not env.stdout_isatty or env.environ.get("TERM") == "dumb":
        return PlainWriter(env.stdout)
    from llmcli.render.console import make_console
    from llmcli.render.markdown import StreamingMarkdown

    sink = StreamingMarkdown(make_console(env))
    sink.__enter__()
    return sink


def notify(env: Environment, message: str) -> None:
    """A dim notice on stderr (plain in a pipe)."""
    from llmcli.render.console import make_console

    make_console(env, stderr=True).print(message, style="dim", markup=False, highlight=False)


def build_messages(system: str | None, text: str) -> list[Message]:
    messages = [Message("system", system)] if system else []
    messages.append(Message("user", text))
    return messages


def stream_answer(generation: Generation, sink: Sink, collect: list[TokenPiece]) -> None:
    """Feed every piece to the sink; on Ctrl-C, keep what was shown and re-raise."""
    try:
        for piece in generation:
            collect.append(piece)
            if piece.text:
                sink.feed(piece.text)
    except KeyboardInterrupt:
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
                "id": p.token_id,
                "text": p.text,
                "logprob": p.logprob,
                "top": [{"token": t, "logprob": lp} for t, lp in (p.top or [])],
            }
            for p in pieces
            if p.token_id >= 0
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
    ctx: opt.CtxOpt = None,
    gpu_layers: opt.GpuLayersOpt = None,
    threads: opt.ThreadsOpt = None,
    chat_template: opt.ChatTemplateOpt = None,
    chat_format: opt.ChatFormatOpt = None,
    json_output: opt.JsonOpt = False,
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
    plain: opt.PlainOpt = False,
    encoding_errors: opt.EncodingErrorsOpt = "strict",
    verbose: opt.VerboseOpt = False,
) -> None:
    """Ask one question and stream the answer.

    Examples:

      llmcli ask "Why is the sky blue?"

      git diff | llmcli ask "write a commit message"

      printf '1, 2, 3,' | llmcli ask --raw --greedy --max-tokens 4
    """
    env = Environment()
    if encoding_errors not in ("strict", "replace"):
        raise UsageError("--encoding-errors must be strict or replace")
    if raw and system:
        raise UsageError("--system has no effect with --raw", hint="drop one of them")
    settings = load_settings(env.environ)
    stdin_text = (
        None if env.stdin_isatty else read_stdin(sys.stdin.buffer, errors=_enc(encoding_errors))
    )
    text = combine_prompt(stdin_text, prompt or [])
    flags = ModelFlags(model, ctx, gpu_layers, threads, chat_template, chat_format, verbose)
    sampling = build_sampling(
        SamplingFlags(
            temperature,
            top_p,
            top_k,
            min_p,
            repeat_penalty,
            seed,
            max_tokens,
            stop,
            greedy,
            logprobs,
        ),
        settings,
    )
    engine, resolved = load_engine(flags, settings, env)
    _show_notices(env, engine)
    system_prompt = system if system is not None else settings.system
    ids = (
        engine.text_prompt(text) if raw else engine.chat_prompt(build_messages(system_prompt, text))
    )
    check_prompt_fits(len(ids), engine.n_ctx)
    generation = engine.generate(ids, sampling)
    pieces: list[TokenPiece] = []
    sink = open_sink(env, plain=plain, json_mode=json_output)
    try:
        stream_answer(generation, sink, pieces)
    except KeyboardInterrupt:
        _report(env, generation, stats, json_output, resolved.name, pieces, logprobs)
        raise Interrupted("interrupted") from None
    _report(env, generation, stats, json_output, resolved.name, pieces, logprobs)


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
