"""``llmcli tokenize``, ``detokenize`` and ``next``: seeing what the decoder sees and predicts.

All three use the model's own tokenizer ("use the model's tokenizer!": another
model's ids mean nothing here). ``next`` shows the model's distribution over
the next token — the softmax of the raw logits, before temperature, top-k or
top-p — and with ``--steps`` runs the autoregressive loop by hand: take the
argmax, append it, predict again. Each step evaluates only the one new token:
the engine keeps the longest common prefix in its KV cache.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmcli.cli import options as opt
from llmcli.cli.ask import build_messages, notify
from llmcli.cli.base import app
from llmcli.cli.loading import ModelFlags, load_token_level, parse_loras
from llmcli.config import Settings, load_settings, settings_for_model
from llmcli.context import Environment
from llmcli.engine.base import TokenLevel
from llmcli.errors import UsageError
from llmcli.render.tokens import (
    Candidate,
    NextStep,
    TokenRow,
    piece_text,
    tokenize_caption,
)
from llmcli.session.budget import check_prompt_fits
from llmcli.session.inputs import combine_prompt, read_stdin

if TYPE_CHECKING:
    import numpy as np

    from llmcli.engine.llama import LlamaEngine


INSPECT = "Inspect"
TOKENIZER_CTX = 256
"""``tokenize``/``detokenize`` never evaluate anything: the smallest context will do."""
IN_PROCESS = "0"
"""``keep_alive`` for commands that need the model's native handles in this process."""
LOCAL = "local"
"""Inspection needs token ids and whole distributions: always the local engine."""
CONTEXT_TAIL_TOKENS = 8
MAX_TOP = 100
MAX_STEPS = 256

SpecialOpt = Annotated[
    bool,
    typer.Option(
        "--special",
        help="Treat special-token text such as <|im_start|> as the special token itself.",
    ),
]


def _load(
    env: Environment,
    flags: ModelFlags,
    settings: Settings | None = None,
    *,
    notices: bool = False,
) -> TokenLevel:
    """The token-level view of a model: a server's API has no token ids or distributions."""
    engine, tokens = load_token_level(flags, settings or _settings(env, flags.model), env)
    if notices:
        for notice in engine.notices:
            notify(env, f"note: {notice}")
    return tokens


def _load_llama(
    env: Environment, flags: ModelFlags, settings: Settings | None = None
) -> LlamaEngine:
    """llama.cpp itself, for commands that read its internals (``lens``, ``bench``).

    Those measure or reach into llama.cpp's own context, which no other engine has;
    token-level commands ask for :class:`TokenLevel` instead (:func:`_load`).
    """
    from llmcli.engine.llama import LlamaEngine

    engine, _ = load_token_level(flags, settings or _settings(env, flags.model), env)
    if not isinstance(engine, LlamaEngine):
        engine.close()
        raise UsageError(
            "this command needs a llama.cpp model loaded here",
            hint="pass -m PATH.gguf or a pulled model",
        )
    for notice in engine.notices:
        notify(env, f"note: {notice}")
    return engine


def _settings(env: Environment, model: str | None) -> Settings:
    """Settings as ``ask`` sees them (a ``[models.NAME]`` table may set the system prompt)."""
    settings = load_settings(env.environ)
    return settings_for_model(settings, model or settings.model)


def _write_json(env: Environment, data: dict[str, Any]) -> None:
    env.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    env.stdout.flush()


def _print(env: Environment, renderable: Any) -> None:
    from llmcli.render.console import make_console

    make_console(env).print(renderable)


def _is_special(engine: TokenLevel, token_id: int) -> bool:
    """A control token (BOS, <|im_end|>): it has text only when specials are rendered."""
    return engine.token_bytes(token_id) == b"" and engine.token_bytes(token_id, special=True) != b""


# -- tokenize ----------------------------------------------------------------------


@dataclass
class Tokenized:
    ids: list[int]
    bos_added: bool
    eos_added: bool


def tokenize_text(engine: TokenLevel, text: str, *, add_bos: bool, special: bool) -> Tokenized:
    """Tokenize and tell which special tokens the tokenizer added on its own."""
    ids = engine.tokenize(text, add_bos=add_bos, special=special)
    bare = engine.tokenize(text, add_bos=False, special=special) if add_bos else ids
    extra = len(ids) - len(bare)
    bos = extra > 0 and ids[0] == engine.bos_id and ids[1 : 1 + len(bare)] == bare
    eos = extra - int(bos) == 1 and ids[-1] == engine.eos_id
    return Tokenized(ids, bos, eos)


@app.command(rich_help_panel=INSPECT)
def tokenize(
    text: Annotated[
        list[str] | None,
        typer.Argument(help="Text to tokenize (words are joined by spaces); else stdin, exactly."),
    ] = None,
    model: opt.ModelOpt = None,
    ids_only: Annotated[
        bool, typer.Option("--ids", help="Print only the ids, space-separated (for scripts).")
    ] = False,
    special: SpecialOpt = False,
    bos: Annotated[
        bool,
        typer.Option("--bos/--no-bos", help="Let the tokenizer add BOS/EOS if the model wants."),
    ] = True,
    json_output: opt.JsonOpt = False,
    keep_alive: opt.KeepAliveOpt = None,
    verbose: opt.VerboseOpt = False,
) -> None:
    """Split text into the model's tokens: position, id and text piece of each.

    Whitespace is made visible (␣ space, ↵ newline, ⇥ tab); bytes that are only
    part of a character (emoji, CJK) show as <0xF0>.

    Examples:

      llmcli tokenize "What is the best way to learn music?"

      echo -n " hello" | llmcli tokenize --ids
    """
    env = Environment()
    if text:
        source = " ".join(text)
    elif not env.stdin_isatty:
        source = read_stdin(sys.stdin.buffer)
    else:
        raise UsageError("nothing to tokenize", hint="give TEXT or pipe it on stdin")
    flags = ModelFlags(model, ctx=TOKENIZER_CTX, verbose=verbose, engine=LOCAL)
    flags.keep_alive = keep_alive
    engine = _load(env, flags)
    result = tokenize_text(engine, source, add_bos=bos, special=special)
    if ids_only:
        env.stdout.write(" ".join(map(str, result.ids)) + "\n")
    elif json_output:
        _write_json(env, _tokenize_json(engine, result))
    else:
        from rich.text import Text

        from llmcli.render.tokens import token_table

        rows = [
            TokenRow(pos, tid, engine.token_bytes(tid, special=True), _is_special(engine, tid))
            for pos, tid in enumerate(result.ids)
        ]
        _print(env, token_table(rows))
        summary = tokenize_caption(
            len(result.ids), bos_added=result.bos_added, eos_added=result.eos_added
        )
        _print(env, Text(summary, style="dim"))


def _tokenize_json(engine: TokenLevel, result: Tokenized) -> dict[str, Any]:
    tokens = []
    for pos, tid in enumerate(result.ids):
        data = engine.token_bytes(tid, special=True)
        tokens.append({"position": pos, "id": tid, "piece": piece_text(data), "bytes": data.hex()})
    return {
        "model": engine.model_name,
        "count": len(result.ids),
        "bos_added": result.bos_added,
        "eos_added": result.eos_added,
        "ids": result.ids,
        "tokens": tokens,
    }


# -- detokenize --------------------------------------------------------------------

_ID_SEPARATORS = re.compile(r"[\s,\[\]]+")


def parse_ids(words: Sequence[str], n_vocab: int) -> list[int]:
    """Ids separated by spaces or commas (``1 2 3``, ``1,2,3``, ``[1, 2, 3]``), in range."""
    ids = []
    for item in _ID_SEPARATORS.split(" ".join(words)):
        if not item:
            continue
        try:
            value = int(item)
        except ValueError:
            raise UsageError(
                f"{item!r} is not a token id", hint="give integers, e.g. llmcli detokenize 19556 28"
            ) from None
        if not 0 <= value < n_vocab:
            raise UsageError(
                f"token id {value} is out of range: the vocabulary has {n_vocab:,} tokens "
                f"(0–{n_vocab - 1})",
                hint="use ids from 'llmcli tokenize' with the same model",
            )
        ids.append(value)
    return ids


@app.command(rich_help_panel=INSPECT)
def detokenize(
    ids: Annotated[
        list[str] | None,
        typer.Argument(help="Token ids (spaces or commas); else read from stdin.", metavar="IDS"),
    ] = None,
    model: opt.ModelOpt = None,
    special: Annotated[
        bool,
        typer.Option("--special", help="Write special tokens (BOS, <|im_end|>) as their text."),
    ] = False,
    json_output: opt.JsonOpt = False,
    verbose: opt.VerboseOpt = False,
) -> None:
    """Turn token ids back into text with the model's tokenizer.

    The text is written exactly (no newline added in a pipe), so
    'llmcli tokenize --ids TEXT | llmcli detokenize' gives TEXT back.
    """
    env = Environment()
    if ids:
        words = list(ids)
    elif not env.stdin_isatty:
        words = [read_stdin(sys.stdin.buffer)]
    else:
        raise UsageError("no token ids given", hint="e.g. llmcli detokenize 19556 28")
    engine = _load(env, ModelFlags(model, ctx=TOKENIZER_CTX, verbose=verbose, engine=LOCAL))
    token_ids = parse_ids(words, engine.n_vocab)
    text = engine.detokenize(token_ids, special=special)
    if json_output:
        _write_json(env, {"model": engine.model_name, "count": len(token_ids), "text": text})
        return
    env.stdout.write(text)
    if env.stdout_isatty and not text.endswith("\n"):
        env.stdout.write("\n")
    env.stdout.flush()


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


@app.command("next", rich_help_panel=INSPECT)
def next_token(
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
    raw: Annotated[
        bool, typer.Option("--raw", help="Plain completion: no chat template, no system prompt.")
    ] = False,
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
    env = Environment()
    if raw and system:
        raise UsageError("--system has no effect with --raw", hint="drop one of them")
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
    engine = _load(env, flags, settings, notices=True)
    system_prompt = system if system is not None else settings.system
    ids = (
        engine.text_prompt(text) if raw else engine.chat_prompt(build_messages(system_prompt, text))
    )
    check_prompt_fits(len(ids) + steps - 1, engine.n_ctx, what="prompt plus --steps")
    run = greedy_steps(engine, ids, steps=steps, top=top)
    if json_output:
        _write_json(env, _next_json(engine, ids, run, raw=raw))
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
                "chosen": {"id": chosen.token_id, "token": piece_text(chosen.piece)},
                "candidates": [
                    {
                        "rank": rank,
                        "id": c.token_id,
                        "token": piece_text(c.piece),
                        "prob": c.prob,
                        "logprob": c.logprob,
                        "argmax": rank == 1,
                    }
                    for rank, c in enumerate(step.candidates, 1)
                ],
            }
        )
    return {
        "model": engine.model_name,
        "raw": raw,
        "prompt_tokens": len(prompt),
        "steps": steps,
        "generated_ids": run.generated,
        "text": engine.detokenize(run.generated),
    }
