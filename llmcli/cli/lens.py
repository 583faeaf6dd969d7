"""``llmcli lens``: the logit lens, the lecture's decoder blocks opened one by one.

For every decoder block N, the residual stream after block N is passed through
the model's own output norm and LM head, as if the model stopped there: which
token would it predict, how sure is it, and where does the model's final answer
rank at that depth. The last row is the model's real prediction, the same as
``llmcli next``'s top-1 (same prompt, same chat template).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmcli.cli import options as opt
from llmcli.cli.ask import build_messages
from llmcli.cli.base import environment
from llmcli.cli.inspect import (
    CONTEXT_TAIL_TOKENS,
    IN_PROCESS,
    LOCAL,
    MAX_TOP,
    _is_special,
    _load_llama,
    _print,
    _settings,
    _write_json,
)
from llmcli.cli.loading import ModelFlags
from llmcli.cli.noeffect import check_raw_system
from llmcli.render.json_out import token_json
from llmcli.render.tokens import piece_text
from llmcli.session.budget import check_prompt_fits
from llmcli.session.inputs import combine_prompt, read_stdin

if TYPE_CHECKING:
    from llmcli.engine.lens import LensResult
    from llmcli.engine.llama import LlamaEngine
    from llmcli.render.lens import LensLine, LensToken


def lens(
    cli: typer.Context,
    prompt: Annotated[
        list[str] | None,
        typer.Argument(help="The prompt. Piped stdin comes first, then these words."),
    ] = None,
    model: opt.ModelOpt = None,
    system: opt.SystemOpt = None,
    top: Annotated[
        int,
        typer.Option(
            "--top", "-k", min=1, max=MAX_TOP, help="Show each block's K most likely tokens."
        ),
    ] = 1,
    raw: opt.RawOpt = False,
    ctx: opt.CtxOpt = None,
    gpu_layers: opt.GpuLayersOpt = None,
    threads: opt.ThreadsOpt = None,
    chat_template: opt.ChatTemplateOpt = None,
    chat_format: opt.ChatFormatOpt = None,
    json_output: opt.JsonOpt = False,
    verbose: opt.VerboseOpt = False,
) -> None:
    """Show what each decoder block would predict next (the "logit lens").

    The hidden state after block N goes through the model's own output norm and
    LM head; the table shows that block's most likely next token, its
    probability, and the rank of the model's final prediction there. The last
    block's row is the model's real prediction (as 'llmcli next'). One forward
    pass.

    Examples:

      llmcli lens --raw "The capital of France is"

      llmcli lens --top 3 --json "What is the best way to learn music?"
    """
    env = environment(cli)
    check_raw_system(raw, system)
    settings = _settings(env, model)
    stdin_text = None if env.stdin_isatty else read_stdin(sys.stdin.buffer)
    text = combine_prompt(stdin_text, prompt or [])
    flags = ModelFlags(
        model, ctx, gpu_layers, threads, chat_template, chat_format, verbose, engine=LOCAL
    )
    flags.keep_alive = IN_PROCESS  # side contexts need the model's native handles
    engine, ident = _load_llama(env, flags, settings)
    system_prompt = system if system is not None else settings.system
    ids = (
        engine.text_prompt(text) if raw else engine.chat_prompt(build_messages(system_prompt, text))
    )
    check_prompt_fits(len(ids), engine.n_ctx, what="prompt")
    result = run_lens(engine, ids, top=top)
    if json_output:
        _write_json(env, {**ident, **_lens_json(engine, ids, result, raw=raw)})
        return
    from llmcli.render.lens import lens_view

    tail = b"".join(engine.token_bytes(i, special=True) for i in ids[-CONTEXT_TAIL_TOKENS:])
    lines, final = _lines(engine, result)
    _print(env, lens_view(lines, final, context_tail=tail))


def run_lens(engine: LlamaEngine, ids: list[int], *, top: int) -> LensResult:
    """Dequantize the output norm and LM head, then read every block's prediction."""
    from llmcli.engine.lens import logit_lens
    from llmcli.store.lens_weights import load_lens_weights

    weights = load_lens_weights(engine.model_path)
    return logit_lens(engine, ids, weights, top=top)


def _token(engine: LlamaEngine, token_id: int, logprob: float) -> LensToken:
    from llmcli.render.lens import LensToken

    data = engine.token_bytes(token_id, special=True)
    return LensToken(token_id, data, logprob, special=_is_special(engine, token_id))


def _lines(engine: LlamaEngine, result: LensResult) -> tuple[list[LensLine], LensToken]:
    import math

    from llmcli.render.lens import LensLine

    lines = [
        LensLine(
            layer=row.layer,
            top=tuple(_token(engine, i, lp) for i, lp in row.top),
            final_rank=row.final_rank,
            final_prob=math.exp(row.final_logprob),
        )
        for row in result.rows
    ]
    last = result.rows[-1]
    return lines, _token(engine, result.final_token, last.final_logprob)


def _lens_json(
    engine: LlamaEngine, prompt: list[int], result: LensResult, *, raw: bool
) -> dict[str, Any]:
    import math

    def token(token_id: int, logprob: float) -> dict[str, Any]:
        piece = engine.token_bytes(token_id, special=True)
        return token_json(token_id, piece_text(piece), prob=math.exp(logprob), logprob=logprob)

    last = result.rows[-1]
    return {
        "raw": raw,
        "prompt_tokens": len(prompt),
        "block_count": len(result.rows),
        "final": token(result.final_token, last.final_logprob),
        "final_max_logit_deviation": result.final_max_deviation,
        "blocks": [
            {
                "block": row.layer,
                "top": [token(i, lp) for i, lp in row.top],
                "final_rank": row.final_rank,
                "final_prob": math.exp(row.final_logprob),
                "source": "llama.cpp logits" if row.from_llama else "output norm + LM head",
            }
            for row in result.rows
        ],
    }
