"""Names for shell completion: aliases, pulled references and saved prompts, cheap to list.

Used by the console script's fast path (``llmcli.cli.entry``) before anything heavy
is imported, and by ``llmcli completion models`` / ``completion prompts``.
"""

from __future__ import annotations

from typing import IO


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
    from llmcli.store.catalog import list_stored, load_aliases
    from llmcli.units import format_bytes

    names = {name: f"alias of {target}" for name, target in sorted(load_aliases().items())}
    stored, _problems = list_stored()
    for model in sorted(stored, key=lambda m: m.ref):
        names.setdefault(model.ref, f"pulled, {format_bytes(model.manifest.size)}")
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
