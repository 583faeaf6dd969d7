"""How every ``--help`` reads: defaults shown, plain type names, no Rich markup surprises.

Typer renders help with Rich markup, so a help text saying ``[default: 0.8]`` loses
the bracket (Rich takes it for a style tag), and it labels values with Python types
(``<bool>``, ``<list[str]>``, ``<int range> [x>=1]``). Every command and group of
llmcli is built from :class:`Command` and :class:`Group` (``cls=`` in the command
table), which fix both in one place when the command is constructed:

* brackets in help texts are escaped, so ``[default: …]`` and ``[env: …]`` show;
* a flag shows no type; a value shows ``INTEGER``, ``FLOAT``, ``TEXT``, ``FILE``,
  ``DIR`` or its choices (an explicit ``metavar`` such as ``N`` or ``URL`` wins);
* a numeric range is said in words after the help: ``[1 or more]``, ``[0 to 20]``;
* an argument is named in capitals (``PROMPT``), as in the usage line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args, get_origin

import typer.core
from rich.markup import escape

_NAMES: dict[Any, str] = {int: "INTEGER", float: "FLOAT", str: "TEXT", bool: "BOOLEAN"}


def type_name(param: Any) -> str:
    """The value's name for help: an explicit metavar, choices, or ``INTEGER``-style."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None:
        return "VALUE"
    if descriptor.is_choice:
        return "|".join(str(getattr(c, "value", c)) for c in descriptor.choices or ())
    annotation = descriptor.annotation
    while get_origin(annotation) in (list, tuple) and get_args(annotation):
        annotation = get_args(annotation)[0]
    if descriptor.is_path or annotation is Path:
        info = descriptor.parameter_info
        if not getattr(info, "dir_okay", True):
            return "FILE"
        if not getattr(info, "file_okay", True):
            return "DIR"
        return "PATH"
    return _NAMES.get(annotation, getattr(annotation, "__name__", "VALUE").upper())


def range_words(low: float | None, high: float | None) -> str:
    """``1 or more``, ``at most 20``, ``0 to 20``; empty without bounds."""
    if low is None and high is None:
        return ""
    if high is None:
        return f"{_num(low)} or more"
    if low is None:
        return f"at most {_num(high)}"
    return f"{_num(low)} to {_num(high)}"


def with_range(help_text: str, words: str) -> str:
    """``Nucleus sampling (0 to 1) [default: 0.95].``: the range before the default."""
    if not words:
        return help_text
    at = help_text.find("[default")
    if at < 0:
        body, end = help_text.rstrip(), ""
        if body.endswith("."):
            body, end = body[:-1], "."
        return f"{body} ({words}){end}".strip()
    return f"{help_text[:at].rstrip()} ({words}) {help_text[at:]}"


def _num(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class ReadableOption(typer.core.TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return ""
        return self.metavar or type_name(self)

    def _get_number_range_help_str(self) -> str | None:
        return None  # said in words in the help text instead


class ReadableArgument(typer.core.TyperArgument):
    def display_type_rich(self, ctx: Any) -> str | None:
        return type_name(self)

    def _get_number_range_help_str(self) -> str | None:
        return None


def _tidy_param(param: Any) -> None:
    if isinstance(param, typer.core.TyperOption):
        words = "" if param.is_flag or param.count else range_words(param.min, param.max)
        param.__class__ = ReadableOption
    elif isinstance(param, typer.core.TyperArgument):
        words = range_words(getattr(param, "min", None), getattr(param, "max", None))
        if param.metavar is None and param.name:
            param.metavar = param.name.upper()
        param.__class__ = ReadableArgument
    else:
        return
    text = escape(with_range(param.help or "", words))
    param.help = text or None


def tidy(command: Any) -> None:
    """Escape ``command``'s help texts and give its parameters readable types."""
    if command.help:
        command.help = escape(command.help)
    if getattr(command, "short_help", None):
        command.short_help = escape(command.short_help)
    for param in command.params:
        _tidy_param(param)


def _help_option(option: Any) -> Any:
    if type(option) is typer.core.TyperOption:  # built once per command, tidied once
        _tidy_param(option)
    return option


class Command(typer.core.TyperCommand):
    """A command whose help reads well (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tidy(self)

    def get_help_option(self, ctx: Any) -> Any:
        return _help_option(super().get_help_option(ctx))


class Group(typer.core.TyperGroup):
    """A group whose help reads well (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tidy(self)

    def get_help_option(self, ctx: Any) -> Any:
        return _help_option(super().get_help_option(ctx))


def unescape(text: str) -> str:
    """Help text as written (``\\[default: 1]`` → ``[default: 1]``), for docs and shells."""
    return text.replace("\\[", "[")
