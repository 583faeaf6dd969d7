"""Sampling settings in force: a flag, else the settings (config, env), else the default.

Which knobs exist, and their defaults, is :data:`llmcli.knobs.KNOBS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmcli.config import Settings
from llmcli.engine.base import Sampling
from llmcli.knobs import KNOBS


class SamplingFlags:
    """The sampling flags as typed: ``{knob: value}``, ``None`` meaning "not given"."""

    def __init__(
        self, *, stop: Sequence[str] | None = None, logprobs: int = 0, **knobs: Any
    ) -> None:
        unknown = set(knobs) - set(KNOBS)
        if unknown:
            raise TypeError(f"unknown sampling knobs: {', '.join(sorted(unknown))}")
        self.knobs = knobs
        self.stop = tuple(stop or ())
        self.logprobs = logprobs

    def __getattr__(self, name: str) -> Any:
        if name in KNOBS:
            return self.knobs.get(name)
        raise AttributeError(name)


def build_sampling(flags: SamplingFlags, settings: Settings) -> Sampling:
    """Flags over settings over defaults; ``--greedy`` means temperature 0 (argmax)."""
    values: dict[str, Any] = {}
    for knob in KNOBS.values():
        value = flags.knobs.get(knob.name)
        if value is None or value is False:
            value = settings.knob(knob.name) if knob.config else knob.default
        if value is not None and knob.kind == "float":
            value = float(value)
        if knob.kind == "limit":
            value = value or None  # 0: no limit
        values[knob.name] = value
    return Sampling(**values, stop=flags.stop, logprobs=flags.logprobs)
