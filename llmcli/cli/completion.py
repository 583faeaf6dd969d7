"""``llmcli completion install [bash|zsh|fish]``, and the hidden model-name lister.

The scripts are generated from the live command tree (the same text as the files
in the repository's ``completions/`` folder), so an installed script always matches
the installed llmcli. ``llmcli completion models`` prints one model name per line
for the scripts' dynamic part; it reads the store's manifests and aliases only,
never llama.cpp, so a Tab press stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import typer

from llmcli.cli.base import environment
from llmcli.errors import UsageError

Shell = Literal["bash", "zsh", "fish"]


def install(
    cli: typer.Context,
    shell: Annotated[
        Shell | None,
        typer.Argument(help="bash, zsh or fish. Default: the one in $SHELL.", show_default=False),
    ] = None,
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the script to stdout instead of installing it.")
    ] = False,
) -> None:
    """Install the completion script where the shell finds it (or print it).

    bash: ~/.local/share/bash-completion/completions/llmcli (needs the bash-completion
    package; otherwise source the file from ~/.bashrc). zsh: ~/.zfunc/_llmcli (add
    ~/.zfunc to fpath before compinit). fish: ~/.config/fish/completions/llmcli.fish.

    Examples:

      llmcli completion install

      llmcli completion install zsh --print > ~/.zfunc/_llmcli
    """
    from llmcli.cli.cmdtree import command_tree
    from llmcli.cli.completion_gen import generate
    from llmcli.config import write_atomic

    env = environment(cli)
    chosen = shell or shell_from_env(env.environ)
    script = generate(chosen, command_tree(cli.find_root().command))
    if print_only:
        env.stdout.write(script)
        return
    target = install_path(chosen, env.environ)
    write_atomic(target, script)
    env.stdout.write(f"installed {chosen} completion: {target}\n")
    hint = activation_hint(chosen, target)
    if hint:
        env.stderr.write(hint + "\n")


def shell_from_env(environ: Mapping[str, str]) -> Shell:
    name = Path(environ.get("SHELL", "")).name
    if name == "bash":
        return "bash"
    if name == "zsh":
        return "zsh"
    if name == "fish":
        return "fish"
    raise UsageError(
        f"cannot tell the shell from SHELL={environ.get('SHELL', '')!r}",
        hint="name it: llmcli completion install bash|zsh|fish",
    )


def install_path(shell: Shell, environ: Mapping[str, str]) -> Path:
    """The per-user folder each shell loads completions from without configuration."""
    home = Path(environ.get("HOME") or Path.home())
    data = Path(environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    config = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    if shell == "bash":
        return data / "bash-completion" / "completions" / "llmcli"
    if shell == "zsh":
        return Path(environ.get("ZDOTDIR") or home) / ".zfunc" / "_llmcli"
    return config / "fish" / "completions" / "llmcli.fish"


def activation_hint(shell: Shell, target: Path) -> str | None:
    if shell == "zsh":
        return (
            f"add to ~/.zshrc, before compinit: fpath=({target.parent} $fpath)\n"
            "then: autoload -Uz compinit && compinit (and open a new shell)"
        )
    if shell == "bash":
        return (
            "open a new shell (needs the bash-completion package; without it, add to "
            f"~/.bashrc: source {target})"
        )
    return None


def models(
    cli: typer.Context,
    describe: Annotated[
        bool, typer.Option("--describe", help="Add a tab and a description (for fish).")
    ] = False,
) -> None:
    """Print model names for completion: aliases and pulled references, one per line.

    The console script answers this before importing the CLI (``llmcli.cli.entry``);
    this command serves ``python -m llmcli`` and keeps the name in the command tree.
    """
    from llmcli.service.model_names import print_model_names

    print_model_names(environment(cli).stdout, describe=describe)


def prompts(cli: typer.Context) -> None:
    """Print saved prompt names for completion, one per line (answered early, like models)."""
    from llmcli.service.model_names import print_prompt_names

    print_prompt_names(environment(cli).stdout)
