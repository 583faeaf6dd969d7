"""Option aliases shared by commands (``Annotated`` types, as in huggingface_hub's CLI).

Every option that falls back to the config file defaults to ``None`` here, so a
flag the user did not pass never hides a configured value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmcli.cli.knob_options import SAMPLING, knob_annotation
from llmcli.knobs import KNOBS

MODEL = "Model and hardware"
OUTPUT = "Output"

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Model: a .gguf path, OWNER/REPO[:QUANT], an alias, or REMOTE/MODEL for a "
        "server named in the config file's remotes table (with --base-url: the server's "
        "model name). "
        "Default: LLMCLI_MODEL, the config file, then the bundled SmolLM2.",
        rich_help_panel=MODEL,
        show_default=False,
    ),
]
SystemOpt = Annotated[
    str | None,
    typer.Option("--system", "-s", help="System prompt.", show_default=False),
]
RawOpt = Annotated[
    bool, typer.Option("--raw", help="Plain completion: no chat template, no system prompt.")
]
# The sampling knobs: derived from llmcli.knobs.KNOBS (commands take them all at once with
# @sampling_options; these single aliases are for a command that wants just one).
TemperatureOpt = knob_annotation(KNOBS["temperature"])
TopPOpt = knob_annotation(KNOBS["top_p"])
TopKOpt = knob_annotation(KNOBS["top_k"])
MinPOpt = knob_annotation(KNOBS["min_p"])
RepeatPenaltyOpt = knob_annotation(KNOBS["repeat_penalty"])
SeedOpt = knob_annotation(KNOBS["seed"])
MaxTokensOpt = knob_annotation(KNOBS["max_tokens"])
StopOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--stop",
        help="Stop when this text appears (repeatable); it is not printed.",
        rich_help_panel=SAMPLING,
        show_default=False,
    ),
]
GreedyOpt = knob_annotation(KNOBS["greedy"])
CtxOpt = Annotated[
    int | None,
    typer.Option(
        "--ctx",
        min=1,
        max=1 << 30,  # engine.base.MAX_CTX: larger sizes would wrap inside llama.cpp
        help="Context window in tokens, rounded up to a multiple "
        "of 256 [default: the model's, at most 4096].",
        rich_help_panel=MODEL,
        show_default=False,
    ),
]
GpuLayersOpt = Annotated[
    str | None,
    typer.Option(
        "--gpu-layers",
        "-g",
        metavar="N|all|auto",
        help="Layers to offload to the GPU [default: auto = all when the llama.cpp "
        "build supports a GPU, else 0].",
        rich_help_panel=MODEL,
        show_default=False,
    ),
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help="CPU threads [default: physical cores].",
        rich_help_panel=MODEL,
        show_default=False,
    ),
]
ChatTemplateOpt = Annotated[
    Path | None,
    typer.Option(
        "--chat-template",
        exists=True,
        dir_okay=False,
        help="Jinja2 chat template file to use instead of the model's.",
        rich_help_panel=MODEL,
        show_default=False,
    ),
]
ChatFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--chat-format",
        help="Built-in chat format instead of the model's template: "
        "chatml, llama-3, llama-2, gemma, phi-3.",
        rich_help_panel=MODEL,
        show_default=False,
    ),
]
LoraOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--lora",
        metavar="PATH[:SCALE]",
        help="Apply a LoRA adapter (a GGUF from llama.cpp's convert_lora_to_gguf.py) at SCALE "
        "[default: 1.0]; repeat for several. PATH may be a pulled OWNER/REPO reference. An "
        "adapter that does not fit the model is refused before generation.",
        rich_help_panel=MODEL,
        show_default=False,
    ),
]
EngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine",
        metavar="local|openai",
        help="Where the model runs: local (llama.cpp in this process) or openai (an "
        "OpenAI-compatible server: llama-server, vLLM, ollama) [default: openai when a "
        "base URL is set, else local].",
        rich_help_panel=MODEL,
        show_default=False,
    ),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        metavar="URL",
        help="OpenAI-compatible server to run on, e.g. http://127.0.0.1:8080/v1 "
        "[env: LLMCLI_BASE_URL]. API key: LLMCLI_API_KEY or OPENAI_API_KEY.",
        rich_help_panel=MODEL,
        show_default=False,
    ),
]
VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose", "-v", help="Show llama.cpp's own log on stderr.", rich_help_panel=MODEL
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print one JSON object instead of text (every shape: docs/json.md).",
        rich_help_panel=OUTPUT,
    ),
]
AnswerJsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print one JSON object instead of streaming text: model, ref, text, "
        "finish_reason, stats (docs/json.md).",
        rich_help_panel=OUTPUT,
    ),
]
JsonListOpt = Annotated[
    bool,
    typer.Option("--json", help="Print a JSON array, one object per item.", rich_help_panel=OUTPUT),
]
StatsOpt = Annotated[
    bool,
    typer.Option(
        "--stats",
        help="Print a stats line (tokens, tokens/s, time to first token) on stderr.",
        rich_help_panel=OUTPUT,
    ),
]
PlainOpt = Annotated[
    bool,
    typer.Option(
        "--plain",
        help="Print raw text even in a terminal (no markdown rendering).",
        rich_help_panel=OUTPUT,
    ),
]
EncodingErrorsOpt = Annotated[
    str,
    typer.Option(
        "--encoding-errors",
        metavar="strict|replace",
        help="What to do with invalid UTF-8 on stdin: fail (strict) or replace it with U+FFFD.",
        rich_help_panel=OUTPUT,
    ),
]
KeepAliveOpt = Annotated[
    str | None,
    typer.Option(
        "--keep-alive",
        metavar="DURATION",
        help="Keep the model loaded in llmcli's engine server this long after the call, so "
        "the next one starts at once (5m, 30s, 1h; 0 = load it in this process, no server) "
        "[env: LLMCLI_KEEP_ALIVE; default: 5m].",
        rich_help_panel=MODEL,
        show_default=False,
    ),
]
