"""``llmcli embed``: pooled embedding vectors, and how similar the inputs are.

Each TEXT argument (or, without arguments, each non-empty stdin line) is one input.
``--json`` prints the vectors; otherwise the cosine-similarity matrix between the
inputs. Local models pool llama.cpp's hidden states (``--pooling``); a server
(``--base-url``) answers ``/v1/embeddings`` with its own pooling.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from llmcli.cli import options as opt
from llmcli.cli.base import environment
from llmcli.cli.inspect import _print, _settings, _write_json
from llmcli.cli.loading import ModelFlags, load_embeddings
from llmcli.cli.notices import notify
from llmcli.context import Environment
from llmcli.errors import UsageError
from llmcli.render.json_out import model_json
from llmcli.service.embed import Embedded, embed_texts
from llmcli.session.inputs import read_stdin

MAX_TEXTS = 1024


def embed(
    cli: typer.Context,
    texts: Annotated[
        list[str] | None,
        typer.Argument(help="Texts to embed, one per argument; else one per stdin line."),
    ] = None,
    model: opt.ModelOpt = None,
    pooling: Annotated[
        str,
        typer.Option(
            "--pooling",
            metavar="mean|last|cls",
            help="How token states become one vector (local models): mean of all tokens, "
            "the last token, or the first (cls).",
        ),
    ] = "mean",
    normalize: Annotated[
        bool,
        typer.Option("--normalize/--no-normalize", help="Scale each vector to length 1."),
    ] = True,
    ctx: opt.CtxOpt = None,
    gpu_layers: opt.GpuLayersOpt = None,
    threads: opt.ThreadsOpt = None,
    engine_name: opt.EngineOpt = None,
    base_url: opt.BaseUrlOpt = None,
    json_output: opt.JsonOpt = False,
    verbose: opt.VerboseOpt = False,
) -> None:
    """Embed texts as vectors; show their cosine similarities (or the vectors with --json).

    Examples:

      llmcli embed "I like cats" "I love cats" "The stock market fell"

      printf 'first line\\nsecond line\\n' | llmcli embed --json --pooling last
    """
    from llmcli.engine.embed import POOLINGS

    env = environment(cli)
    pooling = pooling.lower()
    if pooling not in POOLINGS:
        raise UsageError(f"unknown pooling {pooling!r}", hint="use mean, last or cls")
    inputs = _inputs(env, texts)
    flags = ModelFlags(model, ctx, gpu_layers, threads, verbose=verbose)
    flags.engine, flags.base_url = engine_name, base_url
    settings = _settings(env, model)
    engine, capability, resolved = load_embeddings(flags, settings, env)
    try:
        for notice in engine.notices:
            notify(env, f"note: {notice}")
        result = embed_texts(engine, capability, inputs, pooling=pooling, normalize=normalize)
    finally:
        engine.close()
    if json_output:
        ident = model_json(resolved.name, model or settings.model)
        _write_json(env, {**ident, **_json(inputs, result)})
        return
    _show_matrix(env, inputs, result)


def _inputs(env: Environment, texts: list[str] | None) -> list[str]:
    if texts:
        inputs = list(texts)
    elif not env.stdin_isatty:
        inputs = [line for line in read_stdin(sys.stdin.buffer).splitlines() if line.strip()]
    else:
        inputs = []
    if not inputs:
        raise UsageError("nothing to embed", hint="give TEXT arguments or pipe lines on stdin")
    if len(inputs) > MAX_TEXTS:
        raise UsageError(f"{len(inputs)} texts: at most {MAX_TEXTS}", hint="split the input")
    if any(not text.strip() for text in inputs):
        raise UsageError("an empty text cannot be embedded", hint="drop the empty argument")
    return inputs


def _json(inputs: list[str], result: Embedded) -> dict[str, Any]:
    vectors, counts = result.vectors, result.token_counts
    return {
        "pooling": result.pooling,
        "normalized": result.normalized,
        "dimensions": int(vectors[0].shape[0]) if vectors else 0,
        "embeddings": [
            {
                "index": i,
                "text": text,
                "token_count": counts[i],
                "embedding": vectors[i].tolist(),
            }
            for i, text in enumerate(inputs)
        ],
    }


def _show_matrix(env: Environment, inputs: list[str], result: Embedded) -> None:
    from llmcli.engine.embed import cosine_matrix
    from llmcli.render.embed import similarity_view

    matrix = cosine_matrix(result.vectors).tolist()
    dims = int(result.vectors[0].shape[0])
    caption = (
        f"{len(inputs)} text(s) · {dims} dimensions · pooling: {result.pooling} · "
        "--json for the vectors"
    )
    _print(env, similarity_view(inputs, matrix, caption=caption))
