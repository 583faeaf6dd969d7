"""Grammars for constrained sampling: JSON Schema → GBNF, and compiling GBNF safely.

llama-cpp-python converts a JSON Schema into llama.cpp's GBNF grammar language
(``llama_cpp.llama_grammar.SchemaConverter``), but its converter ignores integer
bounds (``minimum``/``maximum``), so an answer could parse and still fail the
schema. :class:`_BoundedIntegers` adds them: a bounded integer becomes a grammar
of the digit strings inside the range.

llama.cpp reports a grammar it cannot parse by writing to file descriptor 2 and
returning no sampler; handed on, that NULL sampler crashes the process at the
first token. :func:`check_grammar` compiles the grammar once beforehand, catching
what llama.cpp wrote, and turns a failure into a usage error that quotes it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from llmcli.errors import UsageError

MAX_DIGITS = 15
"""Digits an integer without a bound may have (like llama.cpp's own converter)."""

_FD_LOCK = threading.Lock()


def schema_to_gbnf(schema: Mapping[str, Any]) -> str:
    """The GBNF grammar of JSON text that matches ``schema`` (root rule ``root``)."""
    from llama_cpp import llama_grammar

    converter_class = _bounded_integers(llama_grammar)
    converter = converter_class(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    try:
        resolved = converter.resolve_refs(json.loads(json.dumps(schema)), "schema")
        converter.visit(resolved, "")
        grammar: str = converter.format_grammar()
    except UsageError:
        raise
    except Exception as exc:  # the converter asserts and raises freely on what it lacks
        raise UsageError(
            f"llama.cpp cannot turn this JSON Schema into a grammar: {exc or type(exc).__name__}",
            hint="simplify the schema (remote $refs and some keywords are not supported)",
        ) from None
    return grammar


def _bounded_integers(llama_grammar: Any) -> Any:
    base = llama_grammar.SchemaConverter
    reserved = llama_grammar.RESERVED_NAMES

    class _BoundedIntegers(base):  # type: ignore[misc, valid-type]
        """The library's converter, plus ``minimum``/``maximum`` on integers."""

        def visit(self, schema: Any, name: str) -> Any:
            bounds = integer_bounds(schema) if isinstance(schema, dict) else None
            if bounds is None:
                return super().visit(schema, name)
            rule_name = name + "-" if name in reserved else name or "root"
            return self._add_rule(rule_name, integer_range_rule(*bounds) + " space")

    return _BoundedIntegers


def integer_bounds(schema: dict[str, Any]) -> tuple[int | None, int | None] | None:
    """``(low, high)`` for an integer schema with bounds (None: no bound on that side)."""
    if schema.get("type") != "integer" or {"enum", "const", "$ref", "oneOf", "anyOf"} & set(schema):
        return None
    low = _bound(schema, "minimum", "exclusiveMinimum", up=True)
    high = _bound(schema, "maximum", "exclusiveMaximum", up=False)
    if low is None and high is None:
        return None
    return low, high


def _bound(schema: dict[str, Any], inclusive: str, exclusive: str, *, up: bool) -> int | None:
    candidates: list[int] = []
    value = _number(schema.get(inclusive))
    if value is not None:
        candidates.append(math.ceil(value) if up else math.floor(value))
    value = _number(schema.get(exclusive))
    if value is not None:  # draft 4's boolean form is left to the validator
        candidates.append(math.floor(value) + 1 if up else math.ceil(value) - 1)
    if not candidates:
        return None
    return max(candidates) if up else min(candidates)


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return value
    return None


def integer_range_rule(low: int | None, high: int | None) -> str:
    """A GBNF expression for the decimal integers in ``[low, high]``."""
    limit = 10**MAX_DIGITS - 1
    low = -limit if low is None else max(low, -limit)
    high = limit if high is None else min(high, limit)
    if low > high:
        raise UsageError(
            f"the schema's integer range is empty (minimum {low} is above maximum {high})",
            hint="fix minimum/maximum",
        )
    alternatives: list[str] = []
    if low < 0:
        negative = _non_negative(max(1, -high), -low)
        alternatives.append('"-" (' + " | ".join(negative) + ")")
    if high >= 0:
        alternatives.extend(_non_negative(max(low, 0), high))
    return "(" + " | ".join(alternatives) + ")"


def _non_negative(low: int, high: int) -> list[str]:
    """Alternatives for ``low..high`` (both ≥ 0) without leading zeros."""
    result: list[str] = []
    for digits in range(len(str(low)), len(str(high)) + 1):
        first = 0 if digits == 1 else 10 ** (digits - 1)
        span_low, span_high = max(low, first), min(high, 10**digits - 1)
        if span_low <= span_high:
            result.extend(_same_length(str(span_low), str(span_high)))
    return result


def _same_length(low: str, high: str) -> list[str]:
    """Alternatives for the digit strings between ``low`` and ``high`` (equal lengths)."""
    if not low:
        return [""]
    rest = len(low) - 1
    if low[0] == high[0]:
        return [_seq(f'"{low[0]}"', tail) for tail in _same_length(low[1:], high[1:])]
    result: list[str] = []
    low_full = low[1:] == "0" * rest  # low's digit takes every tail
    high_full = high[1:] == "9" * rest
    if not low_full:
        result += [_seq(f'"{low[0]}"', t) for t in _same_length(low[1:], "9" * rest)]
    start = int(low[0]) + (0 if low_full else 1)
    end = int(high[0]) - (0 if high_full else 1)
    if start <= end:
        digit = f'"{start}"' if start == end else f"[{start}-{end}]"
        result.append(_seq(digit, f"[0-9]{{{rest}}}" if rest else ""))
    if not high_full:
        result += [_seq(f'"{high[0]}"', t) for t in _same_length("0" * rest, high[1:])]
    return result


def _seq(head: str, tail: str) -> str:
    return f"{head} {tail}" if tail else head


# -- compiling -----------------------------------------------------------------------------


def check_grammar(llama_cpp: Any, vocab: Any, grammar: str) -> None:
    """Compile ``grammar`` once; a usage error quoting llama.cpp's complaint if it cannot."""
    if not grammar.strip():
        raise UsageError("the grammar is empty", hint="write GBNF rules, starting with root ::= …")
    with _captured_stderr() as captured:
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
    if sampler:
        llama_cpp.llama_sampler_free(sampler)
        return
    problem = _first_problem(captured.getvalue())
    raise UsageError(
        f"llama.cpp cannot compile the grammar: {problem}",
        hint="GBNF needs a 'root' rule and every rule it names "
        "(see llama.cpp's grammars/README.md)",
    )


def _first_problem(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line.split("error parsing grammar: ", 1)[-1]
    return "no rule 'root', or a left-recursive rule"


@contextlib.contextmanager
def _captured_stderr() -> Iterator[io.StringIO]:
    """Collect what is written to fd 2 and to llama-cpp-python's log while compiling."""
    captured = io.StringIO()
    logger = logging.getLogger("llama-cpp-python")
    with _FD_LOCK, tempfile.TemporaryFile(mode="w+b") as sink:
        sys.stderr.flush()
        saved_fd = os.dup(2)
        saved_level = logger.level
        os.dup2(sink.fileno(), 2)
        logger.setLevel(logging.ERROR)  # its callback prints error lines to sys.stderr
        try:
            with contextlib.redirect_stderr(captured):
                yield captured
        finally:
            logger.setLevel(saved_level)
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            sink.seek(0)
            written = sink.read().decode("utf-8", errors="replace")
            captured.seek(0)
            previous = captured.read()
            captured.seek(0)
            captured.truncate()
            captured.write(written + previous)


# -- sampling --------------------------------------------------------------------------------


class CheckedGrammarSampler:
    """Samples with the plain chain and asks the grammar about the chosen token only.

    Filtering the whole vocabulary through the grammar every step costs more than
    the model on a small one (49k candidates matched against the grammar's
    stacks). llama.cpp's own sampler does it this way round: sample unconstrained,
    check that one token, and filter everything only when it is not allowed. The
    result is the grammar-constrained distribution all the same: a token the
    grammar allows is kept with its own probability p, and a rejection (probability
    1 − Z) resamples from p/Z, so each allowed token comes out with p/Z.

    It stands where llama-cpp-python keeps its sampler (``Llama._sampler``), which
    calls only :meth:`sample`.
    """

    def __init__(self, llama_cpp: Any, chain: Any, vocab: Any, grammar: str, n_vocab: int):
        import ctypes

        from llama_cpp._internals import LlamaTokenDataArray

        self._lib = llama_cpp
        self._chain = chain  # a LlamaSampler: freed with this object
        self._grammar = llama_cpp.llama_sampler_init_grammar(
            vocab, grammar.encode("utf-8"), b"root"
        )
        if not self._grammar:
            raise UsageError("llama.cpp cannot compile the grammar")
        self._n_vocab = n_vocab
        self._all = LlamaTokenDataArray(n_vocab=n_vocab)
        self._one_data = (llama_cpp.llama_token_data * 1)()
        self._one = llama_cpp.llama_token_data_array(
            data=ctypes.cast(self._one_data, llama_cpp.llama_token_data_p),
            size=1,
            selected=-1,
            sorted=False,
        )
        self._byref = ctypes.byref
        self.rejections = 0
        """Steps where the unconstrained choice broke the grammar (for benchmarks)."""

    def sample(self, ctx: Any, idx: int) -> int:
        import numpy as np

        lib = self._lib
        pointer = lib.llama_get_logits_ith(ctx.ctx, idx)
        logits = np.ctypeslib.as_array(pointer, shape=(self._n_vocab,))
        candidates = self._byref(self._all.candidates)
        self._all.copy_logits(logits)
        lib.llama_sampler_apply(self._chain.sampler, candidates)
        token = self._selected()
        if not self._allowed(token):
            self.rejections += 1
            self._all.copy_logits(logits)
            lib.llama_sampler_apply(self._grammar, candidates)
            lib.llama_sampler_apply(self._chain.sampler, candidates)
            token = self._selected()
        lib.llama_sampler_accept(self._grammar, token)
        lib.llama_sampler_accept(self._chain.sampler, token)
        return token

    def _selected(self) -> int:
        return int(self._all.candidates_data.id[self._all.candidates.selected])

    def _allowed(self, token: int) -> bool:
        entry = self._one_data[0]
        entry.id, entry.logit, entry.p = token, 1.0, 0.0
        self._one.size, self._one.selected, self._one.sorted = 1, -1, False
        self._lib.llama_sampler_apply(self._grammar, self._byref(self._one))
        return bool(math.isfinite(self._one_data[0].logit))

    def close(self) -> None:
        if self._grammar:
            self._lib.llama_sampler_free(self._grammar)
            self._grammar = None
        self._chain.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
