"""One rule for flags that would have no effect: a usage error (exit 2) naming the flag to drop.

Accepting such a flag silently lets a user believe it did something (``--greedy -t 0.5``
samples nothing at 0.5); every such combination is refused the same way, before a
model is loaded: ``llmcli: error: --temperature has no effect with --greedy (drop
--temperature)``.
"""

from __future__ import annotations

from llmcli.errors import UsageError
from llmcli.knobs import KNOBS
from llmcli.service.sampling import SamplingFlags

IGNORED_BY_GREEDY = ("temperature", "top_p", "top_k", "min_p")
"""The knobs that shape the distribution argmax decoding never samples from (the penalties
change the logits themselves, so they still count with ``--greedy``)."""


def no_effect(flag: str, why: str, hint: str | None = None) -> UsageError:
    """``FLAG has no effect WHY (drop FLAG)``: the one message of the rule."""
    return UsageError(f"{flag} has no effect {why}", hint=hint or f"drop {flag}")


def check_raw_system(raw: bool, system: str | None) -> None:
    if raw and system:
        raise no_effect("--system", "with --raw")


def check_greedy(flags: SamplingFlags) -> None:
    """Sampling knobs given beside ``--greedy`` on the command line."""
    if not flags.greedy:
        return
    for name in IGNORED_BY_GREEDY:
        if getattr(flags, name) is not None:
            raise no_effect(KNOBS[name].option, "with --greedy")


def check_answer_output(*, json_output: bool, logprobs: int, show_probs: bool) -> None:
    """``ask``'s output flags: ``--logprobs`` only in JSON, ``--show-probs`` never in it."""
    if logprobs and not json_output:
        raise no_effect("--logprobs", "without --json", "add --json, or drop --logprobs")
    if show_probs and json_output:
        raise no_effect("--show-probs", "with --json")
