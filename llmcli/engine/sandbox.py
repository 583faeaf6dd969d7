"""A Jinja2 sandbox with limits on time and on the size of every value a template builds.

``ImmutableSandboxedEnvironment`` stops a template from reaching Python internals
(the CVE-2024-34359 pattern), but not from building a huge value: ``'x'|center(10**9)``,
``'{:>999999999}'.format(1)``, ``'%999999999d' % 1``, ``s ~ s`` doubled in a loop,
``'\\t'.expandtabs(...)`` or a join of many copies each allocate gigabytes in one step,
long before the rendered output could be measured. And a template thread cannot be
killed: after a timeout it would go on eating CPU and memory in the background, which
in a chat session lasts until the session dies.

So here every operation that can grow a value is checked *before* it runs, against
an estimate of the size it would produce (the ``*``, ``+`` and ``%`` operators, ``~``
concatenation, calls of methods such as ``str.join`` and ``str.replace``, the
growing filters, ``str.format`` widths), every result is checked after, and the
render thread watches a deadline at each line of template code (``sys.settrace`` on
template frames only), so a template past its time stops itself.
"""

from __future__ import annotations

import functools
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import Concat
from jinja2.sandbox import ImmutableSandboxedEnvironment

TEMPLATE_FILENAME = "<template>"
"""Jinja2's file name for code compiled from a string: the frames the deadline watches."""

_NUMBER = re.compile(r"\d+")


class LimitExceeded(Exception):
    """A template went past one of its limits; the message says which."""


@dataclass(frozen=True)
class Limits:
    max_chars: int = 4 * 1024 * 1024
    """The largest string (or list, in items) a template may build, output included."""
    max_range: int = 200_000
    """Iterations of ``range()`` in one render, all calls together."""
    seconds: float = 2.0


class Budget:
    """The work one render may still do."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.range_left = limits.max_range
        self.deadline = time.monotonic() + limits.seconds

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitExceeded("chat template took too long to render")

    def spend_range(self, n: int) -> None:
        self.range_left -= n
        if self.range_left < 0:
            raise LimitExceeded("chat template loops too long")

    def allow(self, size: int) -> None:
        """Refuse to build a value of ``size`` characters or items."""
        if size > self.limits.max_chars:
            raise LimitExceeded("chat template builds a huge value")

    def checked(self, value: Any) -> Any:
        self.allow(sized(value))
        return value

    def check_numbers(self, args: Iterable[Any]) -> None:
        """A width, count or tab size beyond the size limit can only build a huge value."""
        for arg in args:
            if isinstance(arg, int) and not isinstance(arg, bool):
                self.allow(arg)

    def check_format(self, spec: str) -> None:
        """Widths and precisions written into a ``%`` or ``str.format`` format string."""
        for number in _NUMBER.findall(spec):
            if len(number) > 9 or int(number) > self.limits.max_chars:
                raise LimitExceeded("chat template builds a huge value")


def sized(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple | dict) else 0


def _lines(text: Any) -> int:
    return str(text).count("\n") + 1


def _replace_size(text: Any, old: Any, new: Any) -> int:
    text, old, new = str(text), str(old), str(new)
    hits = text.count(old) if old else len(text) + 1
    return len(text) + hits * max(0, len(new) - len(old))


def _join_size(items: list[Any], separator: Any) -> int:
    return sum(len(str(item)) for item in items) + len(str(separator)) * max(0, len(items) - 1)


def _method_size(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    """The size a ``str`` method call would produce, for the methods that can grow."""
    owner = getattr(method, "__self__", None)
    if not isinstance(owner, str) or not args:
        return None
    name = getattr(method, "__name__", "")
    if name == "replace" and len(args) >= 2:
        return _replace_size(owner, args[0], args[1])
    if name == "expandtabs" and isinstance(args[0], int):
        return len(owner) + owner.count("\t") * max(0, args[0])
    return None


class _BoundedCodeGenerator(CodeGenerator):
    """Compiles ``a ~ b`` to a size-checked join instead of Jinja's unchecked ``str_join``."""

    def visit_Concat(self, node: Concat, frame: Frame) -> None:  # noqa: N802 - Jinja's name
        if frame.eval_ctx.volatile or frame.eval_ctx.autoescape:
            super().visit_Concat(node, frame)
            return
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, with every value-growing operation checked against :class:`Budget`."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _BoundedCodeGenerator

    def __init__(self, budget_of: Callable[[], Budget], **options: Any) -> None:
        super().__init__(**options)
        self.budget_of = budget_of
        self.globals.pop("lipsum", None)  # lipsum(n) writes n paragraphs; no template needs it
        self.globals["range"] = self._bounded_range
        self.filters.pop("urlize", None)  # adds its arguments to every URL; no template needs it
        for name, function in list(self.filters.items()):
            self.filters[name] = self._bounded_filter(name, function)

    def add_filter(self, name: str, function: Callable[..., Any]) -> None:
        self.filters[name] = self._bounded_filter(name, function)

    # -- operators -----------------------------------------------------------------------

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget = self.budget_of()
        budget.check_time()
        if operator == "*":
            count, item = (right, left) if isinstance(right, int) else (left, right)
            if isinstance(count, int):
                budget.allow(sized(item) * max(0, count))
        elif operator == "+":
            budget.allow(sized(left) + sized(right))
        elif operator == "**" and isinstance(right, int) and right > 64:
            raise LimitExceeded("chat template builds a huge value")
        elif operator == "%" and isinstance(left, str):
            budget.check_format(left)
            budget.check_numbers(right if isinstance(right, tuple) else (right,))
        return budget.checked(super().call_binop(context, operator, left, right))

    def bounded_concat(self, parts: tuple[Any, ...]) -> str:
        """``a ~ b ~ c``, refused before joining if the result would be too large."""
        budget = self.budget_of()
        budget.check_time()
        texts = [str(part) for part in parts]
        budget.allow(sum(len(text) for text in texts))
        return "".join(texts)

    # -- calls ---------------------------------------------------------------------------

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        budget = __self.budget_of()
        budget.check_time()
        budget.check_numbers(args)
        budget.check_numbers(kwargs.values())
        if getattr(__obj, "__name__", "") == "join" and isinstance(
            getattr(__obj, "__self__", None), str
        ):
            items = list(args[0]) if args else []
            budget.allow(_join_size(items, __obj.__self__))
            args = (items, *args[1:])
        estimate = _method_size(__obj, args, kwargs)
        if estimate is not None:
            budget.allow(estimate)
        return budget.checked(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        budget_of, spec = self.budget_of, str(value.__self__)

        def checked_format(*args: Any, **kwargs: Any) -> str:
            budget = budget_of()
            budget.check_format(spec)
            budget.check_numbers(args)
            budget.check_numbers(kwargs.values())
            text: str = wrapped(*args, **kwargs)
            budget.allow(len(text))
            return text

        return checked_format

    def _bounded_range(self, *args: int) -> range:
        r = range(*args)
        self.budget_of().spend_range(len(r))
        return r

    # -- filters -------------------------------------------------------------------------

    def _bounded_filter(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        passes_context = getattr(function, "jinja_pass_arg", None) is not None
        budget_of = self.budget_of

        @functools.wraps(function)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            budget = budget_of()
            budget.check_time()
            values = args[1:] if passes_context else args
            budget.check_numbers(values[1:])
            budget.check_numbers(kwargs.values())
            if name == "join" and values:
                items = list(values[0])
                separator = values[1] if len(values) > 1 else kwargs.get("d", "")
                if kwargs.get("attribute") is None and len(values) < 3:
                    budget.allow(_join_size(items, separator))
                args = (*args[: len(args) - len(values)], items, *values[1:])
            else:
                _precheck_filter(budget, name, values, kwargs)
            return budget.checked(function(*args, **kwargs))

        return bounded


def _precheck_filter(
    budget: Budget, name: str, values: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Estimates for the filters whose output can be much larger than their input."""
    if not values:
        return
    text = values[0]
    if name == "indent":
        width = values[1] if len(values) > 1 else kwargs.get("width", 4)
        per_line = width if isinstance(width, int) else len(str(width))
        budget.allow(len(str(text)) + _lines(text) * per_line)
    elif name == "replace" and len(values) >= 3:
        budget.allow(_replace_size(text, values[1], values[2]))
    elif name == "wordwrap":
        width = values[1] if len(values) > 1 else kwargs.get("width", 79)
        wrap = values[3] if len(values) > 3 else kwargs.get("wrapstring")
        breaks = len(str(text)) // max(1, int(width)) + _lines(text)
        budget.allow(len(str(text)) + breaks * len(str(wrap or "\n")))
    elif name == "format" and isinstance(text, str):
        budget.check_format(text)
        budget.check_numbers(values[1:])


def watch_deadline(budget_of: Callable[[], Budget]) -> Callable[..., Any]:
    """A ``sys.settrace`` function that stops template code once its time is up.

    Only frames compiled from the template get line events; Jinja's own functions
    and the Python library run untraced, at full speed.
    """

    def on_line(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            budget_of().check_time()
        return on_line

    def on_call(frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != TEMPLATE_FILENAME:
            return None
        budget_of().check_time()
        return on_line

    return on_call


def run_watched(budget_of: Callable[[], Budget], work: Callable[[], Any]) -> Any:
    """Run ``work`` in this thread with the deadline watch on."""
    previous = sys.gettrace()
    sys.settrace(watch_deadline(budget_of))
    try:
        return work()
    finally:
        sys.settrace(previous)
