"""Does a prompt fit the context window? Checked before generating, never after.

llama-cpp-python only raises when the prompt alone overflows and otherwise
silently clamps the answer, so llmcli checks the budget itself.
"""

from __future__ import annotations

from llmcli.errors import DataError

MIN_ANSWER_TOKENS = 1


def check_prompt_fits(prompt_tokens: int, n_ctx: int, *, what: str = "prompt") -> int:
    """Return the tokens left for the answer; refuse a prompt that leaves none."""
    room = n_ctx - prompt_tokens
    if room < MIN_ANSWER_TOKENS:
        raise DataError(
            f"the {what} is {prompt_tokens} tokens but the context window holds {n_ctx}",
            hint="shorten the input or raise --ctx",
        )
    return room
