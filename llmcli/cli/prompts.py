"""``llmcli prompts save|list|show|rm|edit``: reusable prompts for ``llmcli ask -p NAME``."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict
from typing import Annotated, Any

import typer

from llmcli.cli import options as opt
from llmcli.cli.base import environment
from llmcli.cli.knob_options import KNOB_OPTIONS, KnobFlags, sampling_options
from llmcli.context import Environment
from llmcli.errors import LlmcliError, UsageError
from llmcli.render.json_out import write_json

NameArg = Annotated[
    str, typer.Argument(metavar="NAME", help="The saved prompt's name (see 'prompts list').")
]

EDIT_TEMPLATE = """\
# A saved llmcli prompt: 'llmcli ask -p {name} [WORDS]'. Every key is optional.
# In 'prompt', {{input}} is the input (stdin, then the words) and $1..$9 single words;
# without either the input follows the prompt after a blank line.
# description = "what it is for"
# system = "You are a terse assistant."
prompt = '''
{{input}}'''
# model = "OWNER/REPO:QUANT"
# schema = '''{{"type": "object", "properties": {{"answer": {{"type": "string"}}}}}}'''

# [sampling]
# temperature = 0.2
# max_tokens = 200
"""


def _print_json(env: Environment, data: Any) -> None:
    write_json(env.stdout, data, indent=2)
    env.stdout.flush()


@sampling_options
def save(
    cli: typer.Context,
    prompt_name: NameArg,
    text: Annotated[
        str | None,
        typer.Argument(
            metavar="[PROMPT]",
            help="The prompt text ({input} and $1..$9 are filled in by 'ask -p'); "
            "piped stdin is used when it is not given.",
            show_default=False,
        ),
    ] = None,
    system: opt.SystemOpt = None,
    model: opt.ModelOpt = None,
    schema: Annotated[
        str | None,
        typer.Option(
            "--schema",
            help="JSON Schema (inline, a file, or 'name, age int') the answers must match.",
            show_default=False,
        ),
    ] = None,
    description: Annotated[
        str | None,
        typer.Option(
            "--description", "-d", help="A note shown by 'prompts list'.", show_default=False
        ),
    ] = None,
    knobs: KnobFlags = KNOB_OPTIONS,
    stop: opt.StopOpt = None,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Replace a saved prompt of the same name.")
    ] = False,
) -> None:
    """Save a prompt under NAME (stored in the config dir, one TOML file each).

    Examples:

      llmcli prompts save commit 'Write a one-line commit message for this diff: {input}'

      llmcli prompts save person --schema 'name, age int' 'Describe $1 as JSON.'
    """
    from llmcli.store.prompts import SavedPrompt, prompt_path, save_prompt
    from llmcli.structured import parse_schema_arg

    env = environment(cli)
    path = prompt_path(prompt_name)
    if path.exists() and not force:
        raise LlmcliError(f"a prompt named {prompt_name!r} is saved already", hint="pass --force")
    if text is None and not env.stdin_isatty:
        text = sys.stdin.read() or None
    sampling: dict[str, Any] = {
        name: value
        for name, value in knobs.knobs.items()
        if value is not None and value is not False
    }  # every sampling knob (from llmcli.knobs.KNOBS) the command line gave
    if stop:
        sampling["stop"] = list(stop)
    saved = SavedPrompt(
        name=prompt_name,
        prompt=text,
        system=system,
        model=model,
        description=description,
        sampling=sampling,
        schema=parse_schema_arg(schema) if schema is not None else None,
    )
    if saved.prompt is None and saved.system is None:
        raise UsageError("nothing to save", hint="give the prompt text, or --system")
    env.stderr.write(f"saved {save_prompt(saved)}\n")


def list_cmd(cli: typer.Context, json_output: opt.JsonListOpt = False) -> None:
    """List saved prompts (name, then description or the start of the prompt)."""
    from llmcli.store.prompts import list_prompts, load_prompt

    env = environment(cli)
    rows = []
    for name in list_prompts():
        try:
            saved = load_prompt(name)
        except LlmcliError as exc:
            rows.append({"name": name, "summary": f"(unreadable: {exc.message})"})
            continue
        summary = saved.description or " ".join((saved.prompt or saved.system or "").split())
        rows.append({"name": name, "summary": summary[:70]})
    if json_output:
        _print_json(env, rows)
        return
    for row in rows:
        env.stdout.write(f"{row['name']}\t{row['summary']}\n")
    env.stdout.flush()


def show(cli: typer.Context, prompt_name: NameArg, json_output: opt.JsonOpt = False) -> None:
    """Print a saved prompt (its TOML file, or --json)."""
    from llmcli.store.prompts import load_prompt

    env = environment(cli)
    saved = load_prompt(prompt_name)
    if json_output:
        # the saved model is a reference as typed (resolved when used): "ref" (docs/json.md)
        _print_json(env, {("ref" if k == "model" else k): v for k, v in asdict(saved).items()})
    else:
        env.stdout.write(saved.to_toml())
        env.stdout.flush()


def remove(cli: typer.Context, prompt_name: NameArg) -> None:
    """Remove a saved prompt."""
    from llmcli.store.prompts import remove_prompt

    environment(cli).stderr.write(f"removed {remove_prompt(prompt_name)}\n")


def edit(cli: typer.Context, prompt_name: NameArg) -> None:
    """Open a saved prompt in $VISUAL or $EDITOR (a new one starts from a template).

    After the editor exits the file is checked; a mistake is reported (exit status 65).
    """
    from llmcli.cli.config_cmd import editor_command
    from llmcli.config import write_atomic
    from llmcli.store.prompts import load_prompt, prompt_path

    env = environment(cli)
    path = prompt_path(prompt_name)
    if not path.exists():
        write_atomic(path, EDIT_TEMPLATE.format(name=prompt_name))
    command = editor_command(env.environ)
    try:
        status = subprocess.call([*command, str(path)])
    except OSError as exc:
        raise UsageError(
            f"cannot run editor {command[0]!r}: {exc.strerror or exc}",
            hint="set EDITOR to an installed editor, e.g. EDITOR=nano",
        ) from exc
    if status != 0:
        raise LlmcliError(f"editor {command[0]!r} exited with status {status}")
    load_prompt(prompt_name)  # raises DataError naming the problem
    env.stderr.write(f"{path}: ok\n")
