"""The console-script entry point, with a fast path for shell completion.

Pressing Tab runs ``llmcli completion models``; importing the whole CLI (Typer, Rich,
every command module) costs most of a second, while listing model names needs only
the store's manifests and aliases (~0.2 s in all). So that one command is answered
here, before anything heavy is imported; everything else goes to
:func:`llmcli.cli.app.main`.
"""

from __future__ import annotations

import sys
from typing import IO, NoReturn

COMPLETION_MODELS = ["completion", "models"]
COMPLETION_PROMPTS = ["completion", "prompts"]


def main() -> NoReturn:
    argv = sys.argv[1:]
    try:
        if argv[:2] == COMPLETION_MODELS and set(argv[2:]) <= {"--describe"}:
            print_model_names(sys.stdout, describe=bool(argv[2:]))
            sys.exit(0)
        if argv == COMPLETION_PROMPTS:
            print_prompt_names(sys.stdout)
            sys.exit(0)
        from llmcli.cli.app import main as full_main
    except KeyboardInterrupt:  # Ctrl-C while still importing: as quiet as later on
        sys.exit(130)
    full_main()


def print_model_names(out: IO[str], *, describe: bool) -> None:
    """One name per line (``NAME<TAB>DESCRIPTION`` with ``describe``); silent on errors,
    since whatever a completion helper prints lands in the user's command line."""
    from llmcli.errors import LlmcliError

    try:
        names = model_names()
    except (LlmcliError, OSError):
        return
    lines = [f"{name}\t{about}" if describe else name for name, about in names.items()]
    if lines:
        out.write("\n".join(lines) + "\n")
        out.flush()


def model_names() -> dict[str, str]:
    """``{name: description}``: aliases first, then the references of pulled models."""
    from llmcli.doctor import format_size
    from llmcli.store.catalog import list_stored, load_aliases

    names = {name: f"alias of {target}" for name, target in sorted(load_aliases().items())}
    stored, _problems = list_stored()
    for model in sorted(stored, key=lambda m: m.ref):
        names.setdefault(model.ref, f"pulled, {format_size(model.manifest.size)}")
    return names


def print_prompt_names(out: IO[str]) -> None:
    """Saved prompt names, one per line; silent on errors (like model names)."""
    try:
        from llmcli.store.prompts import list_prompts

        names = list_prompts()
    except Exception:  # whatever a completion helper prints lands in the command line
        return
    if names:
        out.write("\n".join(names) + "\n")
        out.flush()
