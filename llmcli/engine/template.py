"""Chat templates are code from strangers: render them in a sandbox, with limits.

GGUF files embed a Jinja2 chat template. It is rendered only in Jinja2's
``ImmutableSandboxedEnvironment`` (the CVE-2024-34359 pattern reaches Python
internals through an unsandboxed environment), with a bounded output size,
bounded ``range()`` iterations, bounded string/list multiplication, and a wall
clock limit, so a hostile template fails with a clear error instead of hanging
or eating memory.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from llmcli.errors import DataError

MAX_OUTPUT_CHARS = 4 * 1024 * 1024
MAX_RANGE_TOTAL = 200_000
MAX_SECONDS = 2.0

TEMPLATE_HINT = "override it with --chat-template FILE or --chat-format NAME, or use --raw"

BUILTIN_FORMATS: dict[str, str] = {
    "chatml": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    "llama-3": (
        "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}"
        "<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n"
        "{% endif %}"
    ),
    "llama-2": (
        "{% for m in messages %}{% if m['role'] == 'system' %}<<SYS>>\n{{ m['content'] }}\n"
        "<</SYS>>\n\n{% elif m['role'] == 'user' %}{{ bos_token }}[INST] {{ m['content'] }}"
        " [/INST]{% else %} {{ m['content'] }} {{ eos_token }}{% endif %}{% endfor %}"
    ),
    "gemma": (
        "{{ bos_token }}{% for m in messages %}{% set role = 'model' if m['role'] == "
        "'assistant' else 'user' %}<start_of_turn>{{ role }}\n{{ m['content'] | trim }}"
        "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n"
        "{% endif %}"
    ),
    "phi-3": (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    ),
}
DEFAULT_FORMAT = "chatml"


class TemplateError(DataError):
    """The chat template is malformed, hostile, or exceeded its limits."""


def template_sha256(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


class _Budget:
    """Counts work done by one render; raises once a limit is passed."""

    def __init__(self) -> None:
        self.range_left = MAX_RANGE_TOTAL
        self.deadline = time.monotonic() + MAX_SECONDS

    def spend_range(self, n: int) -> None:
        self.range_left -= n
        if self.range_left < 0:
            raise TemplateError("chat template loops too long", hint=TEMPLATE_HINT)

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateError("chat template took too long to render", hint=TEMPLATE_HINT)


def _sized(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple) else 0


class ChatTemplate:
    """A compiled, sandboxed chat template with the special tokens it refers to."""

    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "") -> None:
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        self._budget = _Budget()
        self._template = self._compile(source)

    @property
    def sha256(self) -> str:
        return template_sha256(self.source)

    def render(self, messages: Sequence[dict[str, str]], *, add_generation_prompt: bool) -> str:
        """Render ``messages``; enforce size, loop and time limits."""
        result: list[str] = []
        failure: list[BaseException] = []

        def work() -> None:
            try:
                result.append(self._render_bounded(messages, add_generation_prompt))
            except BaseException as exc:  # re-raised in the caller's thread
                failure.append(exc)

        worker = threading.Thread(target=work, name="llmcli-template", daemon=True)
        worker.start()
        worker.join(MAX_SECONDS + 0.5)
        if worker.is_alive():
            raise TemplateError("chat template took too long to render", hint=TEMPLATE_HINT)
        if failure:
            raise _as_template_error(failure[0])
        return result[0]

    def _render_bounded(self, messages: Sequence[dict[str, str]], add_gen: bool) -> str:
        self._budget = _Budget()
        chunks: list[str] = []
        size = 0
        stream: Iterator[str] = self._template.generate(
            messages=list(messages),
            add_generation_prompt=add_gen,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
        )
        for chunk in stream:
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateError("chat template output is too large", hint=TEMPLATE_HINT)
            self._budget.check_time()
            chunks.append(chunk)
        return "".join(chunks)

    def _compile(self, source: str) -> Any:
        from jinja2 import TemplateSyntaxError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        budget_of = self._current_budget

        class _Env(ImmutableSandboxedEnvironment):
            intercepted_binops = frozenset({"*", "**", "+"})

            def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
                budget_of().check_time()
                if (
                    operator == "*"
                    and isinstance(right, int)
                    and _sized(left) * right > (MAX_OUTPUT_CHARS)
                ):
                    raise TemplateError("chat template builds a huge value", hint=TEMPLATE_HINT)
                if operator == "+" and _sized(left) + _sized(right) > MAX_OUTPUT_CHARS:
                    raise TemplateError("chat template builds a huge value", hint=TEMPLATE_HINT)
                if operator == "**" and isinstance(right, int) and right > 64:
                    raise TemplateError("chat template builds a huge value", hint=TEMPLATE_HINT)
                return super().call_binop(context, operator, left, right)

        env = _Env(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        env.globals["range"] = self._bounded_range(budget_of)
        env.filters["tojson"] = _tojson
        try:
            return env.from_string(source)
        except TemplateSyntaxError as exc:
            raise TemplateError(
                f"chat template has a syntax error on line {exc.lineno}: {exc.message}",
                hint=TEMPLATE_HINT,
            ) from exc

    def _current_budget(self) -> _Budget:
        return self._budget

    @staticmethod
    def _bounded_range(budget_of: Callable[[], _Budget]) -> Callable[..., range]:
        def bounded_range(*args: int) -> range:
            r = range(*args)
            budget_of().spend_range(len(r))
            return r

        return bounded_range


def _raise_exception(message: str) -> None:
    raise TemplateError(f"chat template refused the conversation: {message}")


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(value: Any, indent: int | None = None, **_: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _as_template_error(exc: BaseException) -> BaseException:
    if isinstance(exc, TemplateError | KeyboardInterrupt):
        return exc
    from jinja2.exceptions import SecurityError

    if isinstance(exc, SecurityError):
        return TemplateError(f"chat template tried an unsafe operation: {exc}", hint=TEMPLATE_HINT)
    if isinstance(exc, RecursionError):
        return TemplateError("chat template recursed too deeply", hint=TEMPLATE_HINT)
    if isinstance(exc, MemoryError):
        return TemplateError("chat template ran out of memory", hint=TEMPLATE_HINT)
    return TemplateError(f"chat template failed: {type(exc).__name__}: {exc}", hint=TEMPLATE_HINT)
