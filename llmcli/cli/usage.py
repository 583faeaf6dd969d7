"""Usage errors as one readable line: no validator wording, close suggestions, the right help.

Typer reports a bad value in its validator's words ("Input should be greater than or
equal to 1"), suggests any option that shares a few letters (``--bogus`` → "Possible
options: --verbose") and knows nothing of llmcli's one-line error format. This module
turns such an exception into the line ``llmcli: error: …`` prints, ending with the
help of the command that was run (``see 'llmcli ask --help'``).
"""

from __future__ import annotations

import difflib
from typing import Any

from llmcli.cli.helpfmt import range_words

SUGGEST_CUTOFF = 0.75
"""How alike (difflib's ratio, without the dashes) a suggested option must be."""


def is_bare_help(exc: Exception) -> bool:
    """``llmcli`` or ``llmcli models`` alone: the help was printed, nothing went wrong."""
    return type(exc).__name__ == "NoArgsIsHelpError"


def usage_line(exc: Exception, prog: str) -> str:
    """The message for a usage error, with the subcommand's ``--help`` to see."""
    ctx = getattr(exc, "ctx", None)
    where = getattr(ctx, "command_path", None) or prog
    kind = type(exc).__name__
    if kind == "NoSuchOption":
        message = _no_such_option(exc, ctx)
    elif kind in ("BadParameter", "MissingParameter") and _param(exc) is not None:
        message = _bad_value(exc)
    else:
        message = _message(exc)
    message = message.rstrip(".")
    return f"{message[:1].lower()}{message[1:]} (see '{where} --help')"


def _message(exc: Exception) -> str:
    text = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    return str(text)


def _no_such_option(exc: Any, ctx: Any) -> str:
    name = str(exc.option_name)
    known = _option_names(ctx)
    matches = close_options(name, known)
    if not matches:
        return f"no such option: {name}"
    return f"no such option: {name}; did you mean {' or '.join(matches)}?"


def close_options(name: str, known: list[str]) -> list[str]:
    """At most three options spelled almost like ``name`` (``--temprature``)."""
    if not name.startswith("--"):
        return []
    bare = {option[2:]: option for option in known if option.startswith("--")}
    found = difflib.get_close_matches(name[2:], list(bare), n=3, cutoff=SUGGEST_CUTOFF)
    return [bare[match] for match in found]


def _option_names(ctx: Any) -> list[str]:
    command = getattr(ctx, "command", None)
    if command is None:
        return []
    names: list[str] = []
    for param in command.get_params(ctx):
        names += [*getattr(param, "opts", ()), *getattr(param, "secondary_opts", ())]
    return names


def _param(exc: Exception) -> Any:
    return getattr(exc, "param", None)


def _param_name(param: Any) -> str:
    if getattr(param, "param_type_name", "") == "option":
        longs = [o for o in param.opts if o.startswith("--")]
        return (longs or list(param.opts))[0]
    return str(param.metavar or (param.name or "value").upper())


def _bad_value(exc: Any) -> str:
    param = exc.param
    if type(exc).__name__ == "MissingParameter":
        what = "option" if getattr(param, "param_type_name", "") == "option" else "argument"
        return f"missing {what} {_param_name(param)}"
    return f"invalid value for {_param_name(param)}: {_why(exc, param)}"


def _why(exc: Any, param: Any) -> str:
    """The validator's first complaint in words (pydantic's, when Typer used it)."""
    cause = exc.__cause__
    errors = cause.errors() if cause is not None and hasattr(cause, "errors") else []
    if not errors:
        return str(exc.message)
    error = errors[0]
    kind, given = str(error.get("type", "")), error.get("input")
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return f"{given!r} is not a whole number"
    if kind in ("float_parsing", "float_type"):
        return f"{given!r} is not a number"
    if kind in ("bool_parsing", "bool_type"):
        return f"{given!r} is not true or false"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        bounds = range_words(getattr(param, "min", None), getattr(param, "max", None))
        if not bounds:
            return str(error.get("msg", exc.message))
        return f"{given} is out of range (must be {'from ' if ' to ' in bounds else ''}{bounds})"
    message = str(error.get("msg", exc.message))
    return message.replace("Input should be", "must be")
