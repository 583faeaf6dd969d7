"""Chat templates are code from strangers: render them in a sandbox, with limits.

GGUF files embed a Jinja2 chat template. It is rendered only in Jinja2's
``ImmutableSandboxedEnvironment`` (the CVE-2024-34359 pattern reaches Python
internals through an unsandboxed environment), extended in
:mod:`llmcli.engine.sandbox` with a bound on every value it builds (checked before
the value is allocated), bounded ``range()`` iterations, and a wall-clock limit the
render thread enforces on itself, so a hostile template fails with a clear error
instead of hanging or eating memory.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from llmcli.errors import DataError

if TYPE_CHECKING:
    from llmcli.engine.sandbox import Budget, Limits

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


def _limits(extra_chars: int = 0) -> Limits:
    from llmcli.engine.sandbox import Limits

    return Limits(
        max_chars=MAX_OUTPUT_CHARS + extra_chars, max_range=MAX_RANGE_TOTAL, seconds=MAX_SECONDS
    )


class ChatTemplate:
    """A compiled, sandboxed chat template with the special tokens it refers to."""

    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "") -> None:
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        self._budget = self._new_budget()
        self._template = self._compile_bounded(source)

    @property
    def sha256(self) -> str:
        return template_sha256(self.source)

    def render(self, messages: Sequence[dict[str, str]], *, add_generation_prompt: bool) -> str:
        """Render ``messages``; enforce size, loop and time limits.

        Values may grow to the size limit plus twice the messages' own text, so a long
        prompt is refused later, by the context check that names its token count.
        """
        given = sum(len(str(m.get("content") or "")) for m in messages)
        self._budget = self._new_budget(extra_chars=2 * given)
        if _forking():
            return self._in_child(lambda: self._render_watched(messages, add_generation_prompt))
        result: list[str] = []
        failure: list[BaseException] = []

        def work() -> None:
            from llmcli.engine.sandbox import run_watched

            try:
                result.append(
                    run_watched(
                        self._current_budget,
                        lambda: self._render_bounded(messages, add_generation_prompt),
                    )
                )
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

    def _compile_bounded(self, source: str) -> Any:
        """Compile in a killable child first (a 15 MB template takes minutes and gigabytes
        in Jinja2); only a template that compiled there within the limits is compiled here."""
        if _forking():
            self._in_child(lambda: self._compile(source) and None)
        return self._compile(source)

    def _in_child(self, work: Callable[[], Any]) -> Any:
        """``work`` in a forked child (:mod:`llmcli.engine.template_worker`), errors as
        :class:`TemplateError`; the child is killed at the deadline or on Ctrl-C."""
        from llmcli.engine.template_worker import ChildError, ChildFailed, run_in_child

        try:
            return run_in_child(work, timeout_s=MAX_SECONDS + 0.5, describe=_describe)
        except ChildError as exc:
            raise TemplateError(exc.message, hint=exc.hint) from None
        except ChildFailed as exc:
            if exc.timed_out:
                raise TemplateError(
                    "chat template took too long to render", hint=TEMPLATE_HINT
                ) from None
            raise TemplateError(f"chat template {exc}", hint=TEMPLATE_HINT) from None

    def _render_watched(self, messages: Sequence[dict[str, str]], add_gen: bool) -> str:
        from llmcli.engine.sandbox import run_watched

        return run_watched(self._current_budget, lambda: self._render_bounded(messages, add_gen))

    def _render_bounded(self, messages: Sequence[dict[str, str]], add_gen: bool) -> str:
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
            if size > self._budget.limits.max_chars:
                raise TemplateError("chat template output is too large", hint=TEMPLATE_HINT)
            self._budget.check_time()
            chunks.append(chunk)
        return "".join(chunks)

    def _compile(self, source: str) -> Any:
        from jinja2 import TemplateSyntaxError

        from llmcli.engine.sandbox import BoundedEnvironment

        env = BoundedEnvironment(
            self._current_budget,
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=["jinja2.ext.loopcontrols"],
        )
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        env.add_filter("tojson", _tojson)
        try:
            return env.from_string(source)
        except TemplateSyntaxError as exc:
            raise TemplateError(
                f"chat template has a syntax error on line {exc.lineno}: {exc.message}",
                hint=TEMPLATE_HINT,
            ) from exc
        except (SyntaxError, RecursionError, MemoryError) as exc:
            # Python's compiler on Jinja2's output: "too many statically nested blocks" (30
            # nested for), "too many nested parentheses" (300), or the stack running out.
            detail = exc.msg if isinstance(exc, SyntaxError) else type(exc).__name__
            raise TemplateError(
                f"chat template is nested too deeply to compile ({detail})", hint=TEMPLATE_HINT
            ) from None

    def _current_budget(self) -> Budget:
        return self._budget

    @staticmethod
    def _new_budget(extra_chars: int = 0) -> Budget:
        from llmcli.engine.sandbox import Budget

        return Budget(_limits(extra_chars))


def _raise_exception(message: str) -> None:
    raise TemplateError(f"chat template refused the conversation: {message}")


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(value: Any, indent: int | None = None, **_: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _forking() -> bool:
    from llmcli.engine.template_worker import can_fork

    return can_fork()


def _describe(exc: BaseException) -> Any:
    """In the child: what went wrong, as text for the parent."""
    from llmcli.engine.template_worker import ChildError

    error = _as_template_error(exc)
    if isinstance(error, TemplateError):
        return ChildError("template", error.message, error.hint)
    return ChildError("template", f"chat template failed: {exc}", TEMPLATE_HINT)


def _as_template_error(exc: BaseException) -> BaseException:
    if isinstance(exc, TemplateError | KeyboardInterrupt):
        return exc
    from jinja2.exceptions import SecurityError

    from llmcli.engine.sandbox import LimitExceeded

    if isinstance(exc, LimitExceeded):
        return TemplateError(str(exc), hint=TEMPLATE_HINT)
    if isinstance(exc, SecurityError):
        return TemplateError(f"chat template tried an unsafe operation: {exc}", hint=TEMPLATE_HINT)
    if isinstance(exc, RecursionError):
        return TemplateError("chat template recursed too deeply", hint=TEMPLATE_HINT)
    if isinstance(exc, MemoryError):
        return TemplateError("chat template ran out of memory", hint=TEMPLATE_HINT)
    return TemplateError(f"chat template failed: {type(exc).__name__}: {exc}", hint=TEMPLATE_HINT)
