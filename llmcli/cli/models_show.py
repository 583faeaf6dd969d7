"""``llmcli models show [REF]``: what is inside a model file, read from its GGUF header.

Reads only the header (milliseconds, no llama.cpp): architecture, sizes,
quantization, chat template, and with ``--anatomy`` the decoder's stages with
their parameter counts. A terminal gets Rich tables; a pipe gets plain
``Label: value`` lines; ``--json`` one JSON object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmcli.cli.base import environment
from llmcli.context import Environment
from llmcli.errors import DataError, ModelNotFound, UsageError
from llmcli.render.json_out import model_json, write_json

SHOW_HINT = "give a .gguf path, OWNER/REPO[:QUANT] or an alias: see 'llmcli models list'"

if TYPE_CHECKING:
    from llmcli.store.gguf_header import GGUFFile


def show(
    cli: typer.Context,
    ref: Annotated[
        str | None,
        typer.Argument(
            help="A .gguf path, OWNER/REPO[:QUANT] or an alias. Default: the default model.",
            show_default=False,
        ),
    ] = None,
    anatomy: Annotated[
        bool,
        typer.Option(
            "--anatomy",
            help="Also show the decoder: embedding, blocks (attention, MLP, norms), LM head.",
        ),
    ] = False,
    template: Annotated[
        bool,
        typer.Option("--template", help="Print the raw chat template (Jinja) and nothing else."),
    ] = False,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object (with --anatomy/--template: included)."),
    ] = False,
    ctx: Annotated[
        int | None,
        typer.Option(
            "--ctx",
            min=1,
            help="Context size for the memory estimate [default: the model's, at most 4096].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Show a model's architecture, size, quantization and chat template (header only, fast).

    Also the memory it needs at the context size (weights + KV cache + compute +
    runtime) against this machine's RAM (and GPU memory when a GPU build sees one).

    Examples:

      llmcli models show

      llmcli models show --anatomy

      llmcli models show ./model.gguf --template > template.jinja
    """
    if template and anatomy and not json_output:
        raise UsageError(
            "--template prints only the template", hint="drop --anatomy, or add --json"
        )
    env = environment(cli)
    from llmcli.store.gguf import read_gguf
    from llmcli.store.resolve import NO_MODEL_HINT, resolve_model

    try:
        resolved = resolve_model(ref, env.environ)
    except ModelNotFound as exc:
        if exc.hint == NO_MODEL_HINT:  # that hint speaks of -m, which 'models show' lacks
            exc.hint = SHOW_HINT
        raise
    gguf = read_gguf(resolved.path)
    if template and not json_output:
        _print_template(env, gguf)
        return
    from llmcli.cli.fitcheck import fit_for, this_machine

    memory = fit_for(gguf, ctx, this_machine())
    if json_output:
        _print_json(
            env,
            gguf,
            model=resolved.name,
            ref=ref or env.environ.get("LLMCLI_MODEL") or None,
            source=resolved.source,
            anatomy=anatomy,
            template=template,
            memory=memory,
        )
    else:
        _print_human(
            env, gguf, model=resolved.name, source=resolved.source, anatomy=anatomy, memory=memory
        )


def _print_json(
    env: Environment,
    gguf: GGUFFile,
    *,
    model: str,
    ref: str | None,
    source: str,
    anatomy: bool,
    template: bool,
    memory: dict[str, object] | None,
) -> None:
    from llmcli.store.anatomy import as_dict, build_anatomy
    from llmcli.store.model_summary import summary

    facts = {("general_name" if k == "name" else k): v for k, v in summary(gguf).items()}
    data: dict[str, Any] = {**model_json(model, ref), **facts, "source": source}
    if anatomy and not gguf.is_lora_adapter:
        data["anatomy"] = as_dict(build_anatomy(gguf))
    if template:
        data["chat_template"] = gguf.chat_template
    if memory is not None:
        data["memory"] = memory
    # ensure_ascii: strings from the file cannot smuggle raw C1 controls into a terminal.
    write_json(env.stdout, data, indent=2, ascii=True)


def _print_template(env: Environment, gguf: GGUFFile) -> None:
    text = gguf.chat_template
    if text is None:
        raise DataError(
            f"{gguf.path} has no chat template (no tokenizer.chat_template key)",
            hint="use an instruction-tuned GGUF, or give a template with --chat-template",
        )
    if env.stdout_isatty:
        text = _terminal_safe(text)  # a pipe gets the exact bytes
    env.stdout.write(text if text.endswith("\n") else text + "\n")


def _terminal_safe(text: str) -> str:
    """Keep newlines and tabs, replace other control characters (a template is untrusted)."""
    from llmcli.render.anatomy import safe_text

    return safe_text(text.replace("\r\n", "\n"))


def _print_human(
    env: Environment,
    gguf: GGUFFile,
    *,
    model: str,
    source: str,
    anatomy: bool,
    memory: dict[str, object] | None,
) -> None:
    from rich.text import Text

    from llmcli.render.anatomy import anatomy_tree, summary_lines, summary_table
    from llmcli.render.console import make_console
    from llmcli.store.anatomy import build_anatomy
    from llmcli.store.model_summary import summary

    facts = {"model": model, **summary(gguf), "source": source}
    show_tree = anatomy and not gguf.is_lora_adapter
    from llmcli.render.fit import fit_lines

    extra = fit_lines(memory) if memory is not None else []
    if not env.stdout_isatty:
        lines = summary_lines(facts) + extra
        env.stdout.write("\n".join(lines) + "\n")
        if show_tree:
            console = make_console(env)
            console.width = max(console.width, 160)
            console.print()
            console.print(anatomy_tree(build_anatomy(gguf), title=gguf.name))
        return
    console = make_console(env)
    console.print(summary_table(facts))
    for line in extra:
        console.print(Text(line))
    if show_tree:
        console.print()
        console.print(anatomy_tree(build_anatomy(gguf), title=gguf.name))
