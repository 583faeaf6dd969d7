"""Names users of ollama and other CLIs type first: ``llmcli run``, ``list``, ``show``, ``rm``,
and ``llmcli completion bash|zsh|fish``.

Each alias runs the command it names (registered in :mod:`llmcli.cli.app` under the
"Aliases" panel); only ``run`` decides something: ollama's ``run MODEL`` chats, and
``run MODEL PROMPT`` (or piped stdin) answers once, so it becomes ``chat -m MODEL`` or
``ask -m MODEL PROMPT``, with any further options of that command.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from llmcli.cli.base import environment
from llmcli.cli.completion import Shell

RUN_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}
"""``run``'s own parser leaves ask's and chat's options to them."""


def alias_help(target: str, func: Any) -> str:
    """``func``'s help, saying which command it is an alias of."""
    doc = (func.__doc__ or "").strip()
    first, _, rest = doc.partition("\n\n")
    text = f"{first.rstrip('.')}; an alias of 'llmcli {target}'."
    return f"{text}\n\n{rest}" if rest else text


def run(
    cli: typer.Context,
    model: Annotated[
        str,
        typer.Argument(help="The model: a .gguf path, OWNER/REPO[:QUANT] or an alias."),
    ],
    rest: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="PROMPT",
            help="A prompt to answer once (as 'llmcli ask'); without one (and without piped "
            "stdin) a chat starts (as 'llmcli chat'). Options of that command may follow.",
            show_default=False,
        ),
    ] = None,
) -> Any:
    """Chat with MODEL, or answer PROMPT once (ollama's 'run').

    Examples:

      llmcli run smol

      llmcli run smol "Why is the sky blue?" -n 64

      git diff | llmcli run smol "write a commit message"
    """
    root: Any = cli.find_root().command  # the root group: its commands by name
    args = ["-m", model, *(rest or [])]
    ask = root.commands["ask"]
    ask_ctx = ask.make_context("ask", list(args), parent=cli.find_root())
    words = ask_ctx.params.get("prompt") or ()
    if words or not environment(cli).stdin_isatty:
        with ask_ctx:
            return ask.invoke(ask_ctx)
    chat = root.commands["chat"]
    with chat.make_context("chat", list(args), parent=cli.find_root()) as chat_ctx:
        return chat.invoke(chat_ctx)


def completion_script(shell: Shell) -> Any:
    """``llmcli completion SHELL``: the script on stdout, as every CLI prints it."""

    def print_script(cli: typer.Context) -> None:
        from llmcli.cli.cmdtree import command_tree
        from llmcli.cli.completion_gen import generate

        script = generate(shell, command_tree(cli.find_root().command))
        environment(cli).stdout.write(script)

    print_script.__doc__ = (
        f"Print the {shell} completion script (to install it: 'llmcli completion install "
        f"{shell}').\n\n{_SOURCE[shell]}"
    )
    print_script.__name__ = f"completion_{shell}"
    return print_script


_SOURCE = {
    "bash": "Example: source <(llmcli completion bash)",
    "zsh": "Example: llmcli completion zsh > ~/.zfunc/_llmcli",
    "fish": "Example: llmcli completion fish | source",
}
