"""Property tests of everything that turns typed text into a model: references, LoRA specs,
aliases and the resolver. Whatever the text, the answer is a model or an llmcli error
(a usage error, "not found"), never another exception.

The ``@example`` cases are inputs that once crashed llmcli, kept as regression seeds:
``~nosuchuser/…`` (``Path.expanduser`` raises RuntimeError) and names longer than the
OS allows (``is_file`` raises ENAMETOOLONG).
"""

from __future__ import annotations

import contextlib
import math
import string

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from llmcli.cli.loading import parse_lora
from llmcli.errors import LlmcliError, UsageError
from llmcli.store.catalog import load_aliases, set_alias
from llmcli.store.refs import HubRef, parse_ref
from llmcli.store.resolve import resolve_model

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
REF_ALPHABET = string.ascii_letters + string.digits + "/:@._-~ \\" + "é\0\n"
VALID = [
    "acme/tiny-GGUF",
    "acme/tiny-GGUF:q8_0",
    "acme/tiny-GGUF/sub/tiny-Q4_K_M.gguf",
    "acme/tiny-GGUF:IQ4_XS@v1.0",
    "acme/tiny-GGUF/tiny.gguf@refs/pr/3",
    "./model.gguf",
    "~/models/m.gguf",
    "my-alias",
]
REGRESSIONS = ["~nosuchuser/m.gguf", "~nosuchuser", "x" * 5000, "x/" * 3000 + "m.gguf"]


@st.composite
def mutated_refs(draw: st.DrawFn) -> str:
    """A valid reference with a few characters inserted, deleted or replaced."""
    text = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        char = draw(st.sampled_from(REF_ALPHABET))
        if action == "insert":
            text = text[:position] + char + text[position:]
        elif action == "delete":
            text = text[:position] + text[position + 1 :]
        else:
            text = text[:position] + char + text[position + 1 :]
    return text


@FUZZ
@given(st.one_of(mutated_refs(), st.text(max_size=120)))
def test_parsing_a_reference_gives_a_reference_or_a_usage_error(text: str) -> None:
    try:
        ref = parse_ref(text)
    except UsageError:
        return
    if isinstance(ref, HubRef):
        assert parse_ref(str(ref)) == ref  # the canonical form means the same model


@FUZZ
@given(st.one_of(mutated_refs(), st.text(max_size=120), st.sampled_from(REGRESSIONS)))
@example("~nosuchuser/m.gguf")
@example("x" * 5000)
@example("x/" * 3000 + "m.gguf")
def test_resolving_any_text_gives_a_model_or_an_llmcli_error(text: str) -> None:
    try:
        resolved = resolve_model(text, {})
    except LlmcliError:
        return
    assert resolved.path.is_file()


@FUZZ
@given(
    st.one_of(
        st.text(max_size=60),
        st.builds(
            lambda ref, scale: f"{ref}:{scale}",
            mutated_refs(),
            st.one_of(st.floats(allow_nan=True), st.text(max_size=6)),
        ),
    )
)
def test_a_lora_spec_gives_a_path_and_a_finite_scale_or_a_usage_error(text: str) -> None:
    try:
        spec = parse_lora(text)
    except UsageError:
        return
    assert math.isfinite(spec.scale)
    assert str(spec.path).strip()


@FUZZ
@given(name=st.text(max_size=20), target=st.one_of(mutated_refs(), st.text(max_size=40)))
@example(name="home", target="~nosuchuser/m.gguf")
def test_aliases_are_stored_as_given_or_refused(name: str, target: str) -> None:
    try:
        stored = set_alias(name, target)
    except LlmcliError:
        return
    assert load_aliases()[name] == stored
    with contextlib.suppress(LlmcliError):
        resolve_model(name, {})


def test_regression_seeds_resolve_to_clear_errors() -> None:
    for text in REGRESSIONS:
        try:
            resolve_model(text, {})
        except LlmcliError as error:
            assert error.message  # a message for the user, not an internal error
        else:
            raise AssertionError(f"{text[:40]!r} resolved")
