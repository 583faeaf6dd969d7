"""``llmcli next``: the model's distribution over the next token, and greedy steps by hand.

It shows the softmax of the raw logits (before temperature, top-k or top-p); with
``--steps`` it runs the autoregressive loop by hand: take the argmax, append it,
predict again. Each step evaluates only the one new token: the engine keeps the
longest common prefix in its KV cache.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmcli.cli import options as opt
from llmcli.cli.ask import build_messages
from llmcli.cli.base import environment
from llmcli.cli.loading import ModelFlags, parse_loras
from llmcli.cli.noeffect import check_raw_system
from llmcli.context import Environment
from llmcli.engine.base import TokenLevel
from llmcli.render.json_out import token_json
from llmcli.render.tokens import (
    Candidate,
    NextStep,
    piece_text,
)
from llmcli.session.budget import check_prompt_fits
from llmcli.session.inputs import combine_prompt, read_stdin

if TYPE_CHECKING:
    import numpy as np


from llmcli.cli.inspect import (
    CONTEXT_TAIL_TOKENS,
    LOCAL,
    MAX_STEPS,
    MAX_TOP,
    _is_special,
    _load,
    _settings,
    _write_json,
)

# -- next --------------------------------------------------------------------------


@dataclass
class GreedyRun:
    """The steps of ``next`` and the tokens their argmaxes produced."""

    steps: list[NextStep] = field(default_factory=list)
    generated: list[int] = field(default_factory=list)


def top_candidates(logprobs: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` most likely token ids, most likely first (ties: lower id first, as argmax)."""
    import numpy as np

    k = min(k, logprobs.shape[0])
    ids = np.argpartition(-logprobs, k - 1)[:k]
    result: np.ndarray = ids[np.lexsort((ids, -logprobs[ids]))]
    return result


def greedy_steps(engine: TokenLevel, prompt: Sequence[int], *, steps: int, top: int) -> GreedyRun:
    """Predict, take the argmax, append it, repeat: the autoregressive loop, one table a step.

    Stops early when the argmax ends the answer (an end-of-generation token), as
    ``ask`` does. Only the appended token is evaluated at each step (KV prefix reuse).
    """
    run = GreedyRun()
    context = list(prompt)
    for step in range(1, steps + 1):
        logprobs = engine.next_token_logprobs(context)
        best = top_candidates(logprobs, top)
        ends = engine.is_end_of_generation(int(best[0]))
        run.steps.append(
            NextStep(
                step=step,
                position=len(context),
                context_tail=_tail(engine, context),
                candidates=tuple(_candidate(engine, int(i), float(logprobs[i])) for i in best),
                end_of_generation=ends,
            )
        )
        if ends:
            break
        run.generated.append(int(best[0]))
        context.append(int(best[0]))
    return run


def _candidate(engine: TokenLevel, token_id: int, logprob: float) -> Candidate:
    data = engine.token_bytes(token_id, special=True)
    return Candidate(token_id, data, logprob, special=_is_special(engine, token_id))


def _tail(engine: TokenLevel, context: Sequence[int]) -> bytes:
    return b"".join(engine.token_bytes(i, special=True) for i in context[-CONTEXT_TAIL_TOKENS:])


def next_token(
    cli: typer.Context,
    prompt: Annotated[
        list[str] | None,
        typer.Argument(help="The prompt. Piped stdin comes first, then these words."),
    ] = None,
    model: opt.ModelOpt = None,
    system: opt.SystemOpt = None,
    top: Annotated[
        int, typer.Option("--top", "-k", min=1, max=MAX_TOP, help="Show the K most likely tokens.")
    ] = 10,
    steps: Annotated[
        int,
        typer.Option(
            "--steps",
            min=1,
            max=MAX_STEPS,
            help="Take the argmax and predict again, N times (greedy decoding by hand).",
        ),
    ] = 1,
    raw: opt.RawOpt = False,
    lora: opt.LoraOpt = None,
    ctx: opt.CtxOpt = None,
    gpu_layers: opt.GpuLayersOpt = None,
    threads: opt.ThreadsOpt = None,
    chat_template: opt.ChatTemplateOpt = None,
    chat_format: opt.ChatFormatOpt = None,
    json_output: opt.JsonOpt = False,
    keep_alive: opt.KeepAliveOpt = None,
    verbose: opt.VerboseOpt = False,
) -> None:
    """Show the model's distribution over the next token.

    Probabilities are the softmax of the model's raw logits (temperature 1, no
    top-k/top-p/min-p): what sampling starts from. The argmax (▶) is what
    'ask --greedy' picks. The chat template is applied unless --raw.

    Examples:

      llmcli next "What is the best way to learn music?"

      llmcli next --raw --steps 5 --top 3 "The capital of France is"
    """
    env = environment(cli)
    check_raw_system(raw, system)
    settings = _settings(env, model)
    stdin_text = None if env.stdin_isatty else read_stdin(sys.stdin.buffer)
    text = combine_prompt(stdin_text, prompt or [])
    flags = ModelFlags(
        model,
        ctx,
        gpu_layers,
        threads,
        chat_template,
        chat_format,
        verbose,
        parse_loras(lora),
        engine=LOCAL,
        keep_alive=keep_alive,
    )
    engine, ident = _load(env, flags, settings, notices=True)
    system_prompt = system if system is not None else settings.system
    ids = (
        engine.text_prompt(text) if raw else engine.chat_prompt(build_messages(system_prompt, text))
    )
    check_prompt_fits(len(ids) + steps - 1, engine.n_ctx, what="prompt plus --steps")
    run = greedy_steps(engine, ids, steps=steps, top=top)
    if json_output:
        _write_json(env, {**ident, **_next_json(engine, ids, run, raw=raw)})
        return
    _print_steps(env, engine, run)


def _print_steps(env: Environment, engine: TokenLevel, run: GreedyRun) -> None:
    from rich.text import Text

    from llmcli.render.console import make_console
    from llmcli.render.tokens import next_token_view, visible_piece

    console = make_console(env)
    for step in run.steps:
        console.print(next_token_view(step))
        console.print()
    continuation = b"".join(engine.token_bytes(i) for i in run.generated)
    line = Text("greedy continuation: “", style="bold")
    line.append(visible_piece(continuation))
    line.append("”")
    console.print(line)


def _next_json(
    engine: TokenLevel, prompt: Sequence[int], run: GreedyRun, *, raw: bool
) -> dict[str, Any]:
    steps = []
    for step in run.steps:
        chosen = step.candidates[0]
        steps.append(
            {
                "step": step.step,
                "position": step.position,
                "end_of_generation": step.end_of_generation,
                "chosen": token_json(chosen.token_id, piece_text(chosen.piece)),
                "candidates": [
                    {
                        "rank": rank,
                        **token_json(c.token_id, piece_text(c.piece)),
                        "prob": c.prob,
                        "logprob": c.logprob,
                        "argmax": rank == 1,
                    }
                    for rank, c in enumerate(step.candidates, 1)
                ],
            }
        )
    return {
        "raw": raw,
        "prompt_tokens": len(prompt),
        "steps": steps,
        "generated_ids": run.generated,
        "text": engine.detokenize(run.generated),
    }
