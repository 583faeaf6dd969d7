"""Command-line options for the sampling knobs, derived from :data:`llmcli.knobs.KNOBS`.

A command that samples declares one parameter, ``knobs: KnobFlags``, and is
decorated with :func:`sampling_options`: the decorator puts one Typer option per
knob in its place (name, short flag, type, bounds, help and panel from the knob)
and hands the command the values as a :class:`~llmcli.service.sampling.SamplingFlags`.
A new knob therefore appears in ``ask``, ``chat`` and every other sampling command
without touching them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from llmcli.cli.noeffect import check_greedy
from llmcli.knobs import KNOBS, Knob, limit_value
from llmcli.service.sampling import SamplingFlags

SAMPLING = "Sampling"
KNOBS_PARAM = "knobs"
F = TypeVar("F", bound=Callable[..., Any])

KnobFlags = SamplingFlags
"""The type of a command's ``knobs`` parameter (filled by :func:`sampling_options`)."""

KNOB_OPTIONS = SamplingFlags()
"""The placeholder default of a ``knobs`` parameter; the decorator always passes a fresh one."""

_TYPES: dict[str, Any] = {"float": float | None, "int": int | None, "optional_int": int | None}


def knob_annotation(knob: Knob) -> Any:
    """``Annotated[type, typer.Option(...)]`` for one knob."""
    if knob.kind == "bool":
        return Annotated[
            bool,
            typer.Option(knob.option, *knob.flags, help=knob.cli_help(), rich_help_panel=SAMPLING),
        ]
    if knob.kind == "limit":  # "none" is a value here, so a parser instead of min/max
        limit = typer.Option(
            knob.option,
            *knob.flags,
            parser=_parse_limit,
            metavar="N",
            help=knob.cli_help(),
            rich_help_panel=SAMPLING,
            show_default=False,
        )
        return Annotated[int | None, limit]
    option = typer.Option(
        knob.option,
        *knob.flags,
        min=knob.minimum,
        max=knob.maximum,
        help=knob.cli_help(),
        rich_help_panel=SAMPLING,
        show_default=False,
    )
    return Annotated[_TYPES[knob.kind], option]


def _parse_limit(text: str) -> int:
    """``N`` ≥ 0 or ``none``; 0 stands for "no limit" until build_sampling."""
    try:
        value = limit_value(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a whole number ≥ 0 or 'none'") from None
    return value or 0


def _parameters() -> list[inspect.Parameter]:
    return [
        inspect.Parameter(
            knob.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=False if knob.kind == "bool" else None,
            annotation=knob_annotation(knob),
        )
        for knob in KNOBS.values()
    ]


def sampling_options(func: F) -> F:
    """Replace ``func``'s ``knobs`` parameter by one option per knob (see the module doc)."""
    signature = inspect.signature(func, eval_str=True)
    before: list[inspect.Parameter] = []
    after: list[inspect.Parameter] = []
    seen = False
    for param in signature.parameters.values():
        if param.name == KNOBS_PARAM:
            seen = True
            continue
        (after if seen else before).append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))
    if not seen:
        raise TypeError(f"{func.__name__} has no {KNOBS_PARAM!r} parameter")

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in KNOBS}
        flags = SamplingFlags(**values)
        check_greedy(flags)  # one rule for flags with no effect (llmcli.cli.noeffect)
        return func(**kwargs, knobs=flags)

    parameters = before + _parameters() + after
    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper  # type: ignore[return-value]
