"""``llmcli tokenize``, ``detokenize`` and ``next``: seeing what the decoder sees and predicts.

All three use the model's own tokenizer ("use the model's tokenizer!": another
model's ids mean nothing here). ``next`` shows the model's distribution over
the next token — the softmax of the raw logits, before temperature, top-k or
top-p — and with ``--steps`` runs the autoregressive loop by hand: take the
argmax, append it, predict again. Each step evaluates only the one new token:
the engine keeps the longest common prefix in its KV cache.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmcli.cli import options as opt
from llmcli.cli.base import environment
from llmcli.cli.loading import ModelFlags, load_token_level
from llmcli.cli.notices import notify
from llmcli.config import Settings, load_settings, settings_for_model
from llmcli.context import Environment
from llmcli.engine.base import TokenLevel
from llmcli.errors import UsageError
from llmcli.render.json_out import model_json, token_json, write_json
from llmcli.render.tokens import (
    TokenRow,
    piece_text,
    tokenize_caption,
)
from llmcli.session.inputs import read_stdin

if TYPE_CHECKING:
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
) -> tuple[TokenLevel, dict[str, Any]]:
    """The token-level view of a model (a server's API has no token ids or distributions),
    and its ``model``/``ref`` for ``--json``."""
    settings = settings or _settings(env, flags.model)
    engine, tokens, resolved = load_token_level(flags, settings, env)
    if notices:
        for notice in engine.notices:
            notify(env, f"note: {notice}")
    return tokens, model_json(resolved.name, flags.model or settings.model)


def _load_llama(
    env: Environment, flags: ModelFlags, settings: Settings | None = None
) -> tuple[LlamaEngine, dict[str, Any]]:
    """llama.cpp itself, for commands that read its internals (``lens``, ``bench``).

    Those measure or reach into llama.cpp's own context, which no other engine has;
    token-level commands ask for :class:`TokenLevel` instead (:func:`_load`).
    """
    from llmcli.engine.llama import LlamaEngine

    settings = settings or _settings(env, flags.model)
    engine, _, resolved = load_token_level(flags, settings, env)
    if not isinstance(engine, LlamaEngine):
        engine.close()
        raise UsageError(
            "this command needs a llama.cpp model loaded here",
            hint="pass -m PATH.gguf or a pulled model",
        )
    for notice in engine.notices:
        notify(env, f"note: {notice}")
    return engine, model_json(resolved.name, flags.model or settings.model)


def _settings(env: Environment, model: str | None) -> Settings:
    """Settings as ``ask`` sees them (a ``[models.NAME]`` table may set the system prompt)."""
    settings = load_settings(env.environ)
    return settings_for_model(settings, model or settings.model)


def _write_json(env: Environment, data: dict[str, Any]) -> None:
    write_json(env.stdout, data)
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


def tokenize(
    cli: typer.Context,
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
    env = environment(cli)
    if text:
        source = " ".join(text)
    elif not env.stdin_isatty:
        source = read_stdin(sys.stdin.buffer)
    else:
        raise UsageError("nothing to tokenize", hint="give TEXT or pipe it on stdin")
    flags = ModelFlags(model, ctx=TOKENIZER_CTX, verbose=verbose, engine=LOCAL)
    flags.keep_alive = keep_alive
    engine, ident = _load(env, flags)
    result = tokenize_text(engine, source, add_bos=bos, special=special)
    if ids_only:
        env.stdout.write(" ".join(map(str, result.ids)) + "\n")
    elif json_output:
        _write_json(env, {**ident, **_tokenize_json(engine, result)})
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
        tokens.append({"position": pos, **token_json(tid, piece_text(data)), "bytes": data.hex()})
    return {
        "token_count": len(result.ids),
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


def detokenize(
    cli: typer.Context,
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
    env = environment(cli)
    if ids:
        words = list(ids)
    elif not env.stdin_isatty:
        words = [read_stdin(sys.stdin.buffer)]
    else:
        raise UsageError("no token ids given", hint="e.g. llmcli detokenize 19556 28")
    flags = ModelFlags(model, ctx=TOKENIZER_CTX, verbose=verbose, engine=LOCAL)
    engine, ident = _load(env, flags)
    token_ids = parse_ids(words, engine.n_vocab)
    text = engine.detokenize(token_ids, special=special)
    if json_output:
        _write_json(env, {**ident, "token_count": len(token_ids), "ids": token_ids, "text": text})
        return
    env.stdout.write(text)
    if env.stdout_isatty and not text.endswith("\n"):
        env.stdout.write("\n")
    env.stdout.flush()
