"""``llmcli bench``: how fast this machine reads prompts and generates, per model.

Modelled on llama.cpp's ``llama-bench`` (pp512 / tg128, several repetitions),
run through llmcli's own engine so the numbers are what ``ask`` and ``chat`` get.
``--json`` fields are documented in README.md ("Benchmark").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmcli.cli import options as opt
from llmcli.cli.base import environment
from llmcli.cli.inspect import (
    IN_PROCESS,
    LOCAL,
    _load_llama,
    _print,
    _settings,
    _write_json,
)
from llmcli.cli.loading import ModelFlags

if TYPE_CHECKING:
    from llmcli.engine.bench import BenchResult
    from llmcli.engine.llama import LlamaEngine

MAX_TOKENS = 16384
MAX_REPETITIONS = 100


def bench(
    cli: typer.Context,
    model: opt.ModelOpt = None,
    n_prompt: Annotated[
        int,
        typer.Option(
            "--pp", "-p", min=0, max=MAX_TOKENS, help="Prompt tokens for the pp test (0: skip)."
        ),
    ] = 512,
    n_gen: Annotated[
        int,
        typer.Option(
            "--tg", "-n", min=0, max=MAX_TOKENS, help="Generated tokens for the tg test (0: skip)."
        ),
    ] = 128,
    repetitions: Annotated[
        int,
        typer.Option(
            "--repetitions", "-r", min=1, max=MAX_REPETITIONS, help="Timed runs per test."
        ),
    ] = 5,
    threads: opt.ThreadsOpt = None,
    gpu_layers: opt.GpuLayersOpt = None,
    json_output: opt.JsonOpt = False,
    verbose: opt.VerboseOpt = False,
) -> None:
    """Measure prompt processing (pp) and generation (tg) speed in tokens/s.

    Each test runs once to warm up, then --repetitions times; the table shows the
    median, min and max. Compare builds and settings with --threads and
    --gpu-layers (N, all, or 0 for CPU only).

    Examples:

      llmcli bench

      llmcli bench --gpu-layers 0 --threads 4 --json
    """
    from llmcli.engine.bench import run_bench, tests_for
    from llmcli.errors import UsageError

    tests = tests_for(n_prompt, n_gen)
    if not tests:
        raise UsageError("--pp 0 and --tg 0 leave nothing to measure", hint="drop one of them")
    env = environment(cli)
    settings = _settings(env, model)
    flags = ModelFlags(model, 256, gpu_layers, threads, verbose=verbose, engine=LOCAL)
    flags.keep_alive = IN_PROCESS  # measures llama.cpp in this process, never the server
    engine, ident = _load_llama(env, flags, settings)
    try:
        results = run_bench(engine, tests, repetitions=repetitions, threads=engine.threads)
        data = {**ident, **bench_json(engine, results, repetitions=repetitions)}
    finally:
        engine.close()
    if json_output:
        _write_json(env, data)
        return
    from llmcli.render.bench import bench_view

    _print(env, bench_view(data))


def bench_json(
    engine: LlamaEngine, results: list[BenchResult], *, repetitions: int
) -> dict[str, Any]:
    from llmcli.engine.bench import N_BATCH
    from llmcli.store.gguf import read_gguf

    header = read_gguf(engine.model_path)
    gpu = bool(engine.native_lib.llama_supports_gpu_offload())
    return {
        "model": engine.model_name,
        "path": str(engine.model_path),
        "file_size": header.file_size,
        "parameters": header.parameter_count,
        "quantization": header.file_type_name,
        "backend": "GPU" if gpu and engine.gpu_layers != 0 else "CPU",
        "gpu_offload_supported": gpu,
        "threads": engine.threads,
        "gpu_layers": engine.gpu_layers,
        "n_batch": N_BATCH,
        "repetitions": repetitions,
        "results": [
            {
                "test": r.test.name,
                "n_prompt": r.test.n_prompt,
                "n_gen": r.test.n_gen,
                "tokens_per_s": r.summary(),
                "samples_s": list(r.seconds),
            }
            for r in results
        ],
    }
