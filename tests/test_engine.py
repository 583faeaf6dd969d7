"""The engine below the CLI: stop sequences, hardware defaults, context sizes, token bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmcli.engine.base import LoadOptions, Message, Prompt, Sampling, round_ctx
from llmcli.engine.hardware import (
    ALL_LAYERS,
    _cores_from_cpuinfo,
    parse_gpu_layers,
    resolve_gpu_layers,
)
from llmcli.engine.llama import effective_ctx
from llmcli.engine.stops import StopMatcher
from llmcli.errors import UsageError

# -- stop sequences -------------------------------------------------------------------------


def feed_all(matcher: StopMatcher, pieces: list[str]) -> str:
    shown = "".join(matcher.feed(piece) for piece in pieces)
    return shown if matcher.stopped else shown + matcher.flush()


def test_a_stop_split_across_pieces_is_never_shown() -> None:
    assert feed_all(StopMatcher(["END"]), ["abc E", "N", "D more"]) == "abc "


def test_a_false_start_is_released() -> None:
    matcher = StopMatcher(["END"])
    assert matcher.feed("abc EN") == "abc "  # "EN" may start "END": held back
    assert matcher.feed("x") == "ENx"
    assert not matcher.stopped


def test_the_earliest_of_several_stops_wins() -> None:
    assert feed_all(StopMatcher(["\n\n", "7"]), ["1, 2, 3, 7, 8\n\nmore"]) == "1, 2, 3, "


def test_held_text_comes_out_at_the_end() -> None:
    assert feed_all(StopMatcher(["END"]), ["the E"]) == "the E"


def test_no_stops_passes_text_through() -> None:
    matcher = StopMatcher([])
    assert matcher.feed("é🙂") == "é🙂"
    assert matcher.flush() == ""


# -- hardware and context sizes -------------------------------------------------------------


def test_physical_cores_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    blocks = [
        f"processor\t: {i}\nphysical id\t: 0\ncore id\t\t: {i // 2}\n" for i in range(8)
    ]  # 4 cores, 2 hyper-threads each
    cpuinfo.write_text("\n".join(blocks) + "\n")
    assert _cores_from_cpuinfo(cpuinfo) == 4
    assert _cores_from_cpuinfo(tmp_path / "missing") is None


@pytest.mark.parametrize(
    ("text", "expected"), [("auto", "auto"), ("ALL", "all"), ("0", 0), (" 12 ", 12)]
)
def test_parse_gpu_layers(text: str, expected: object) -> None:
    assert parse_gpu_layers(text) == expected


@pytest.mark.parametrize("text", ["-1", "many", ""])
def test_bad_gpu_layers_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_gpu_layers(text)


def test_auto_offloads_everything_only_when_the_build_can() -> None:
    assert resolve_gpu_layers("auto", gpu_supported=True) == ALL_LAYERS
    assert resolve_gpu_layers("auto", gpu_supported=False) == 0
    assert resolve_gpu_layers("all", gpu_supported=False) == ALL_LAYERS
    assert resolve_gpu_layers(20, gpu_supported=True) == 20


@pytest.mark.parametrize(
    ("requested", "trained", "expected"),
    [
        (None, 8192, 4096),
        (None, 2048, 2048),
        (None, None, 4096),
        (2000, 8192, 2048),
        (100, 8192, 256),
        (8192, 8192, 8192),
    ],
)
def test_context_sizes_are_multiples_of_256(
    requested: int | None, trained: int | None, expected: int
) -> None:
    assert effective_ctx(requested, trained) == expected
    assert round_ctx(expected) == expected


# -- the real model -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(model_path: Path):  # type: ignore[no-untyped-def]
    from llmcli.engine.llama import LlamaEngine

    loaded = LlamaEngine(model_path, LoadOptions(n_ctx=1000, gpu_layers="auto"), trained_ctx=8192)
    yield loaded
    loaded.close()


def test_load_defaults(engine) -> None:  # type: ignore[no-untyped-def]
    assert engine.n_ctx == 1024  # 1000 asked, rounded to llama.cpp's granule
    assert engine._llama.n_ctx() == 1024
    assert engine.gpu_layers == 0  # the CPU build cannot offload: auto means none
    assert engine.threads >= 1


def test_long_tokens_keep_all_their_bytes(engine) -> None:  # type: ignore[no-untyped-def]
    long_ids = [i for i in range(engine.n_vocab) if len(engine.token_bytes(i)) > 32]
    assert len(long_ids) == 47  # SmolLM2's whitespace runs and rules
    text = "x = [" + "".join(f"\n{' ' * 40}{i}," for i in range(5))
    assert engine.detokenize(engine.tokenize(text, add_bos=False)) == text


def test_a_second_turn_reuses_the_kv_cache(engine) -> None:  # type: ignore[no-untyped-def]
    first = [Message("user", "Name a colour.")]
    gen = engine.generate(engine.chat_prompt(first), Sampling(greedy=True, max_tokens=8))
    answer = gen.text()
    second = [*first, Message("assistant", answer), Message("user", "Another one?")]
    prompt = engine.chat_prompt(second)
    gen2 = engine.generate(prompt, Sampling(greedy=True, max_tokens=4))
    gen2.text()
    assert gen2.stats.cached_tokens >= len(engine.chat_prompt(first))
    assert gen2.stats.prompt_tokens == len(prompt)


def test_cancel_stops_a_generation(engine) -> None:  # type: ignore[no-untyped-def]
    gen = engine.generate(engine.text_prompt("Once upon a time"), Sampling(max_tokens=500))
    pieces = iter(gen)
    next(pieces)
    gen.cancel()
    rest = list(pieces)
    assert len(rest) <= 2
    assert gen.stats.finish_reason == "interrupted"
    # the engine is free again
    again = engine.generate(engine.text_prompt("1, 2, 3,"), Sampling(greedy=True, max_tokens=3))
    assert again.text().startswith(" 4")


def test_the_same_prompt_twice_gives_the_same_greedy_answer(engine) -> None:  # type: ignore[no-untyped-def]
    """A fully cached prompt (/retry, ``next`` twice) must not replay one token only:
    llama-cpp-python 0.3.36 then gets wrong logits and the model ends at once."""
    prompt = engine.text_prompt(
        "Write a long, detailed story about a lighthouse keeper and a storm."
    )
    answers = []
    for _ in range(2):
        generation = engine.generate(prompt, Sampling(greedy=True, max_tokens=8))
        answers.append(generation.text())
    assert answers[0] and answers[0] == answers[1]
    first = engine.next_token_logprobs(prompt).argmax()
    assert engine.next_token_logprobs(prompt).argmax() == first


def test_presence_penalty_reaches_llama_cpp(engine) -> None:  # type: ignore[no-untyped-def]
    """A knob declared once (llmcli/knobs.py) is applied by the local engine: with the
    same seed, penalizing tokens already generated changes a repetitive answer."""
    prompt = Prompt.raw("List the numbers: 1, 2, 1, 2, 1, 2,")
    plain = engine.generate(prompt, Sampling(seed=3, max_tokens=24)).text()
    again = engine.generate(prompt, Sampling(seed=3, max_tokens=24)).text()
    penalized = engine.generate(
        prompt, Sampling(seed=3, max_tokens=24, presence_penalty=2.0)
    ).text()
    assert plain == again
    assert penalized != plain
