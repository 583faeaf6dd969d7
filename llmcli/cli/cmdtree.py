"""The CLI's command tree as plain data, for shell completions and the reference docs.

Walks the Click command that Typer builds (``typer.main.get_command(app)``) by
duck typing (nothing is imported from ``click``) and records, for every command,
its subcommands, options and arguments, and what completes each value: model names
from the local store, files, directories, a fixed list of words, or nothing.

Which values are model references is decided by parameter name (``--model``,
``--lora``, and positional ``ref``/``refs``/``model``/``models``), so a new command
gets model-name completion by naming its parameter that way.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

MODEL_PARAMS = frozenset({"model", "models", "ref", "refs", "lora", "adapter", "adapters"})
PROMPT_PARAMS = frozenset({"prompt_name"})
"""Parameters that name a saved prompt (``ask -p NAME``, ``prompts show NAME``)."""
HELP_WIDTH = 100

ValueKind = Literal["model", "prompt", "file", "dir", "choice", "text"]


@dataclass(frozen=True)
class OptionSpec:
    names: tuple[str, ...]
    takes_value: bool
    repeatable: bool
    value: ValueKind
    choices: tuple[str, ...]
    help: str
    metavar: str


@dataclass(frozen=True)
class ArgumentSpec:
    name: str
    variadic: bool
    required: bool
    value: ValueKind
    choices: tuple[str, ...]
    help: str


@dataclass(frozen=True)
class CommandSpec:
    path: tuple[str, ...]
    help: str
    options: tuple[OptionSpec, ...]
    arguments: tuple[ArgumentSpec, ...]
    subcommands: tuple[CommandSpec, ...]

    @property
    def name(self) -> str:
        return " ".join(self.path)

    def walk(self) -> Iterator[CommandSpec]:
        """This command, then every subcommand, depth first, in name order."""
        yield self
        for sub in self.subcommands:
            yield from sub.walk()


def command_tree(app: Any) -> CommandSpec:
    """The whole tree of ``app`` (the Typer app, or its root command), hidden ones left out.

    The app is passed in, never imported: this module sits below the app that
    registers the commands using it (``completion install``).
    """
    import typer.main

    root = typer.main.get_command(app) if hasattr(app, "registered_commands") else app
    help_names = tuple(root.context_settings.get("help_option_names", ["--help"]))
    return _spec(root, (), help_names)


def _spec(command: Any, path: tuple[str, ...], help_names: tuple[str, ...]) -> CommandSpec:
    subcommands = tuple(
        _spec(sub, (*path, name), help_names)
        for name, sub in sorted(getattr(command, "commands", {}).items())
        if not getattr(sub, "hidden", False)
    )
    options = [_option(p) for p in command.params if _is_option(p) and not p.hidden]
    help_option = OptionSpec(help_names, False, False, "text", (), "Show help and exit.", "")
    arguments = tuple(_argument(p) for p in command.params if not _is_option(p))
    return CommandSpec(
        path=path,
        help=short_help(command),
        options=(*options, help_option),
        arguments=arguments,
        subcommands=subcommands,
    )


def _is_option(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "option"


def short_help(command: Any) -> str:
    text = command.get_short_help_str(HELP_WIDTH) if hasattr(command, "get_short_help_str") else ""
    return plain(text)


def _option(param: Any) -> OptionSpec:
    takes_value = not (getattr(param, "is_flag", False) or getattr(param, "count", False))
    names = tuple(sorted((*param.opts, *param.secondary_opts), key=lambda n: (len(n) > 2, n)))
    kind, choices = _value_kind(param) if takes_value else ("text", ())
    return OptionSpec(
        names=names,
        takes_value=takes_value,
        repeatable=bool(param.multiple),
        value=kind,
        choices=choices,
        help=first_sentence(param.help or ""),
        metavar=param.metavar or (param.name or "value").upper(),
    )


def _argument(param: Any) -> ArgumentSpec:
    kind, choices = _value_kind(param)
    return ArgumentSpec(
        name=param.name or "arg",
        variadic=param.nargs == -1,
        required=bool(param.required),
        value=kind,
        choices=choices,
        help=first_sentence(param.help or ""),
    )


def _value_kind(param: Any) -> tuple[ValueKind, tuple[str, ...]]:
    name = (param.name or "").lower()
    if name in MODEL_PARAMS:
        return "model", ()
    if name in PROMPT_PARAMS:
        return "prompt", ()
    annotation = _bare_annotation(param)
    info = getattr(getattr(param, "type_descriptor", None), "parameter_info", None)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "choice", tuple(str(member.value) for member in annotation)
    if get_origin(annotation) is Literal:
        return "choice", tuple(str(value) for value in get_args(annotation))
    if annotation is Path or (isinstance(annotation, type) and issubclass(annotation, os.PathLike)):
        if info is not None and getattr(info, "file_okay", True) is False:
            return "dir", ()
        return "file", ()
    choices = _static_choices(name) or _metavar_choices(param.metavar)
    if choices:
        return "choice", choices
    return "text", ()


def _bare_annotation(param: Any) -> Any:
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    while get_origin(annotation) in (list, tuple, set) and get_args(annotation):
        annotation = get_args(annotation)[0]
    return annotation


def _static_choices(name: str) -> tuple[str, ...]:
    """Words known to the code rather than to the annotation."""
    if name == "chat_format":
        from llmcli.engine.template import BUILTIN_FORMATS

        return tuple(sorted(BUILTIN_FORMATS))
    if name == "key":
        from llmcli.config import KEYS

        return tuple(sorted(KEYS))
    return ()


def _metavar_choices(metavar: str | None) -> tuple[str, ...]:
    """``strict|replace`` → both words; ``N|all|auto`` → ``all``, ``auto``."""
    if not metavar or "|" not in metavar:
        return ()
    return tuple(word for word in metavar.split("|") if re.fullmatch(r"[a-z][a-z0-9_-]*", word))


_MARKUP_RE = re.compile(r"(?<!\\)\[/?[a-z][a-z ._-]*\]")


def plain(text: str) -> str:
    """Help text without Rich markup (escaped brackets kept as written), on one line."""
    return " ".join(_MARKUP_RE.sub("", text).replace("\\[", "[").split())


def first_sentence(text: str) -> str:
    text = plain(text)
    match = re.search(r"(?<=[.!?])\s", text)
    return text[: match.start()] if match else text


# ---- help text, for the reference docs -------------------------------------------------

STABLE_HELP_ENV = {
    "COLUMNS": str(HELP_WIDTH),
    "LINES": "40",
    "TERMINAL_WIDTH": str(HELP_WIDTH),
    "TERM": "dumb",
    "NO_COLOR": "1",
    "_TYPER_FORCE_DISABLE_TERMINAL": "1",
    "FORCE_COLOR": None,
    "PY_COLORS": None,
    "CLICOLOR_FORCE": None,
    "GITHUB_ACTIONS": None,
    "TTY_COMPATIBLE": None,
    "TTY_INTERACTIVE": None,
}
"""Environment for reproducible ``--help`` output: fixed width, no colour, no terminal."""


def help_text(app: Any, path: tuple[str, ...]) -> str:
    """``llmcli PATH --help`` as plain text (run in-process with :data:`STABLE_HELP_ENV`).

    Call it in a process started with that environment (``scripts/gen_docs.py`` does):
    Typer reads some of it when first imported.
    """
    from typer.testing import CliRunner

    runner = CliRunner()
    result = runner.invoke(app, [*path, "--help"], prog_name="llmcli", env=STABLE_HELP_ENV)
    if result.exit_code != 0:
        raise RuntimeError(f"llmcli {' '.join(path)} --help failed: {result.output}")
    lines = [line.rstrip() for line in result.output.splitlines()]
    return "\n".join(lines).strip("\n") + "\n"
