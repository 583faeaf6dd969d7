"""The one declaration of every sampling knob.

Each :class:`Knob` says once what a setting is called, its type, default, bounds
and help, whether the config file and an ``LLMCLI_*`` variable may set it, and
what llama.cpp and an OpenAI-compatible server call it. Everything else derives
from :data:`KNOBS`: the defaults of :class:`~llmcli.engine.base.Sampling`, the
config keys and their validation (:mod:`llmcli.config`), the command-line options
with their help and bounds (:mod:`llmcli.cli.knob_options`), the REPL's ``/set``
table (:mod:`llmcli.repl.commands`), and the arguments both engines pass on.

Adding a knob is a row here, a field on ``Sampling`` (typed, for the engines),
and nothing else unless an engine needs more than a renamed argument.

This module imports nothing of llmcli: it sits below config, engine and cli.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

KnobKind = Literal["float", "int", "optional_int", "limit", "bool"]
"""``limit``: a whole number ≥ 0 where 0 (and ``none`` when typed) means no limit."""
ENV_PREFIX = "LLMCLI_"


@dataclass(frozen=True)
class Knob:
    """One sampling setting, declared once."""

    name: str
    kind: KnobKind
    default: Any
    help: str
    """The option's help, without the ``[default: …]`` that is added to it."""
    minimum: float | None = None
    maximum: float | None = None
    flags: tuple[str, ...] = ()
    """Extra option names (short ones), beside ``--NAME-WITH-DASHES``."""
    shown_default: str | None = None
    """How the default reads in help (``None``: the default value itself)."""
    note: str = ""
    """A short remark for ``/set`` and the config template, e.g. ``0 = off``."""
    config: bool = True
    """A config-file key and an ``LLMCLI_*`` variable."""
    llama: str | None = None
    """The keyword of ``llama_cpp.Llama.generate`` (``None``: not passed on)."""
    remote: str | None = None
    """The request field of an OpenAI-compatible server (``None``: not sent)."""
    unset: str = ""
    """What an unset (``None``) value means, for help and ``config show``."""
    example: Any = None
    """Shown in the new config file where the default is unset."""

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def config_help(self) -> str:
        text = self.help.rstrip(".")
        text = text[:1].lower() + text[1:]
        return f"{text}, {self.note}" if self.note and self.note not in text else text

    def cli_help(self) -> str:
        """The option's help with its default, as ``--help`` shows it."""
        if self.kind == "bool":
            return self.help
        shown = self.shown_default or (self.unset if self.default is None else _num(self.default))
        if not shown:
            return self.help
        return f"{self.help.rstrip('.')} [default: {shown}]."


KNOBS: dict[str, Knob] = {
    k.name: k
    for k in (
        Knob("temperature", "float", 0.8, "Sampling temperature.", 0.0, flags=("-t",),
             note="0 = greedy", llama="temp", remote="temperature"),
        Knob("top_p", "float", 0.95, "Nucleus sampling.", 0.0, 1.0,
             llama="top_p", remote="top_p"),
        Knob("top_k", "int", 40, "Top-k sampling, 0 = off.", 0, note="0 = off",
             llama="top_k", remote="top_k"),
        Knob("min_p", "float", 0.05, "Min-p sampling.", 0.0, 1.0,
             llama="min_p", remote="min_p"),
        Knob("repeat_penalty", "float", 1.0, "Repetition penalty.", 0.0,
             shown_default="1.0 = off", note="1 = off", llama="repeat_penalty",
             remote="repeat_penalty"),
        Knob("presence_penalty", "float", 0.0,
             "Presence penalty: make any token already in the text less likely.", -2.0, 2.0,
             shown_default="0.0 = off", note="0 = off", llama="presence_penalty",
             remote="presence_penalty"),
        Knob("seed", "optional_int", None, "Random seed: the same seed gives the same text.",
             0, 2**32 - 2, config=False, unset="random"),  # 32-bit in llama.cpp: never wrapped
        # 512: at the default sampling SmolLM2 sometimes loops until the context is full
        # (benchmarks/bench_quickstart.py); every answer that ends by itself is shorter.
        Knob("max_tokens", "limit", 512, "Generate at most N tokens (0 or none: no limit).", 0,
             flags=("-n",), note="0 or none = until the model stops"),
        Knob("greedy", "bool", False,
             "Argmax decoding: always the most likely token (deterministic).", config=False),
    )
}  # fmt: skip
"""Every knob, in the order help and ``/set`` list them."""


def knob_default(name: str) -> Any:
    """The declared default of knob ``name`` (used by ``Sampling``'s fields)."""
    return KNOBS[name].default


def rule(knob: Knob) -> str:
    """What a value must be, in words: ``a number from 0 to 1``."""
    if knob.kind == "bool":
        return "on or off"
    what = "a number" if knob.kind == "float" else "a whole number"
    low, high = knob.minimum, knob.maximum
    if low is not None and high is not None:
        text = f"{what} from {_num(low)} to {_num(high)}"
    elif low is not None:
        text = f"{what} ≥ {_num(low)}"
    else:
        text = what
    if knob.note:
        text += f" ({knob.note})"
    if knob.kind == "optional_int":
        text += f", or 'none' ({knob.unset})" if knob.unset else ", or 'none'"
    if knob.kind == "limit":
        text = "a whole number ≥ 0, or 'none' (0 or none: no limit)"
    return text


def parse_value(knob: Knob, text: str) -> Any:
    """A value typed as text (``/set``), checked; ``ValueError`` when it is not allowed."""
    value = text.strip()
    lowered = value.lower()
    if knob.kind == "bool":
        if lowered in ("on", "true", "yes", "1"):
            return True
        if lowered in ("off", "false", "no", "0"):
            return False
        raise ValueError(value)
    if knob.kind == "optional_int" and lowered in ("none", "off", "default", "-"):
        return None
    if knob.kind == "limit":
        return limit_value(value)
    number: float = float(value) if knob.kind == "float" else int(value)
    if not math.isfinite(number):
        raise ValueError(value)
    if knob.minimum is not None and number < knob.minimum:
        raise ValueError(value)
    if knob.maximum is not None and number > knob.maximum:
        raise ValueError(value)
    return number


def limit_value(text: str) -> int | None:
    """A ``limit`` knob typed as text: ``N`` ≥ 1, or None for 0/``none`` (no limit)."""
    lowered = text.strip().lower()
    if lowered in ("none", "off", "unlimited", "-"):
        return None
    number = int(lowered)  # ValueError for anything else
    if number < 0:
        raise ValueError(text)
    return number or None


def describe(knob: Knob, value: Any) -> str:
    """How ``/set`` shows a value."""
    if knob.kind == "bool":
        return "on" if value else "off"
    if value is None:
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _num(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)
