"""``llmcli tokenize`` / ``detokenize`` / ``next``: the real CLI and the real SmolLM2 tokenizer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import run_cli

ESC = b"\x1b"
LECTURE_PROMPT = "What is the best way to learn music?"
TRICKY_TEXTS = [
    LECTURE_PROMPT,
    "   three leading spaces and two trailing  ",
    " 🙂 emoji, 👍🏽 with a skin tone, and 👨‍👩‍👧 a family",
    "日本語のテキストと中文文本",
    "tabs\tand\nnewlines\r\n and <|im_start|> as plain text",
    "def f():\n" + " " * 40 + "return 1",  # a 41-byte whitespace token
]


@pytest.fixture(scope="module")
def vocab(model_path: Path):
    """llama.cpp's own tokenizer, straight from llama-cpp-python (vocabulary only)."""
    import llama_cpp

    return llama_cpp.Llama(model_path=str(model_path), vocab_only=True, verbose=False)


def cli_json(*args: str, input: str | None = None) -> dict:
    result = run_cli(*args, "--json", input=input)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- tokenize / detokenize ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_tokenize_ids_equal_llama_cpp_and_detokenize_round_trips(text: str, vocab) -> None:
    expected = vocab.tokenize(text.encode(), add_bos=True, special=False)
    result = run_cli("tokenize", "--ids", input=text)
    assert result.returncode == 0, result.stderr
    ids = [int(i) for i in result.stdout.split()]
    assert ids == expected

    back = run_cli("detokenize", *map(str, ids))
    assert back.returncode == 0, back.stderr
    assert back.stdout.decode("utf-8") == text  # exact: no newline added in a pipe


def test_tokenize_argument_words_are_joined_and_json_describes_each_token(vocab) -> None:
    data = cli_json("tokenize", "What", "is", "the", "best", "way", "to", "learn", "music?")
    assert data["ids"] == vocab.tokenize(LECTURE_PROMPT.encode(), add_bos=True)
    assert data["token_count"] == len(data["ids"]) == 9
    assert data["bos_added"] is False and data["eos_added"] is False  # SmolLM2 adds neither
    assert [t["position"] for t in data["tokens"]] == list(range(9))
    assert "".join(t["text"] for t in data["tokens"]) == LECTURE_PROMPT
    assert data["tokens"][1] == {"position": 1, "id": 314, "text": " is", "bytes": "206973"}


def test_tokenize_table_makes_whitespace_visible_and_marks_split_characters() -> None:
    result = run_cli("tokenize", input=" a\tb\n🙂")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert ESC.decode() not in out
    assert "␣a" in out and "⇥" in out and "↵" in out
    assert "tokens · BOS added: no · EOS added: no" in out
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["pos", "id", "token"]


def test_emoji_split_across_tokens_shows_its_bytes(vocab) -> None:
    text = "🎷"  # not one token in SmolLM2's vocabulary
    ids = vocab.tokenize(text.encode(), add_bos=False)
    assert len(ids) > 1
    out = run_cli("tokenize", text).stdout.decode()
    assert "<0xF0>" in out
    data = cli_json("tokenize", text)
    assert bytes.fromhex("".join(t["bytes"] for t in data["tokens"])) == text.encode()


def test_special_flag_parses_control_tokens() -> None:
    plain = cli_json("tokenize", "<|im_start|>user")
    special = cli_json("tokenize", "--special", "<|im_start|>user")
    assert special["ids"][0] == 1 and special["tokens"][0]["text"] == "<|im_start|>"
    assert len(plain["ids"]) > len(special["ids"])
    out = run_cli("tokenize", "--special", "<|im_start|>user").stdout.decode()
    assert "<|im_start|>" in out


def test_detokenize_drops_control_tokens_unless_special() -> None:
    assert run_cli("detokenize", "1", "4093").stdout == b"user"
    assert run_cli("detokenize", "--special", "1", "4093").stdout == b"<|im_start|>user"


def test_detokenize_reads_ids_from_stdin_in_any_common_format() -> None:
    ids = cli_json("tokenize", "hello world")["ids"]
    for form in (" ".join(map(str, ids)), ",".join(map(str, ids)), json.dumps(ids)):
        result = run_cli("detokenize", input=form + "\n")
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"hello world"


def test_detokenize_refuses_ids_outside_the_vocabulary() -> None:
    result = run_cli("detokenize", "5", "49152")
    assert result.returncode == 2
    message = result.stderr.decode()
    assert "49152 is out of range" in message and "49,152 tokens" in message
    assert len(message.strip().splitlines()) == 1
    assert run_cli("detokenize", "five").returncode == 2
    assert run_cli("detokenize", "--", "-1").returncode == 2


# -- next -------------------------------------------------------------------------------


def ask_json(*args: str) -> dict:
    return cli_json("ask", "--greedy", *args)


@pytest.mark.slow
@pytest.mark.parametrize("raw", [False, True])
def test_next_top5_is_a_sorted_distribution_whose_argmax_ask_picks(raw: bool) -> None:
    prompt = LECTURE_PROMPT if not raw else "The capital of France is"
    mode = ("--raw",) if raw else ()
    data = cli_json("next", *mode, "--top", "5", prompt)
    assert len(data["steps"]) == 1
    candidates = data["steps"][0]["candidates"]
    probs = [c["prob"] for c in candidates]
    assert len(probs) == 5
    assert all(0 < p <= 1 for p in probs)
    assert probs == sorted(probs, reverse=True)
    assert sum(probs) <= 1 + 1e-9
    for c in candidates:
        assert c["logprob"] == pytest.approx(math.log(c["prob"]))
    assert [c["argmax"] for c in candidates] == [True, False, False, False, False]

    answer = ask_json(*mode, "--max-tokens", "1", "--logprobs", "5", prompt)
    assert data["text"] == answer["text"] == candidates[0]["text"]
    # ask's per-token log-probabilities come from the same softmax over the logits
    first = answer["tokens"][0]
    assert first["id"] == candidates[0]["id"]
    assert first["logprob"] == pytest.approx(candidates[0]["logprob"], abs=1e-4)
    assert [t["logprob"] for t in first["top"]] == pytest.approx(
        [c["logprob"] for c in candidates], abs=1e-4
    )


@pytest.mark.slow
@pytest.mark.parametrize("raw", [False, True])
def test_next_steps_equal_greedy_ask(raw: bool) -> None:
    prompt = LECTURE_PROMPT if not raw else "1, 2, 3, 4,"
    mode = ("--raw",) if raw else ()
    data = cli_json("next", *mode, "--steps", "5", "--top", "3", prompt)
    answer = ask_json(*mode, "--max-tokens", "5", prompt)
    assert data["text"] == answer["text"]
    assert len(data["steps"]) == 5
    positions = [s["position"] for s in data["steps"]]
    assert positions == list(range(data["prompt_tokens"], data["prompt_tokens"] + 5))
    assert [s["chosen"]["id"] for s in data["steps"]] == data["generated_ids"]


@pytest.mark.slow
def test_next_stops_where_greedy_ask_stops() -> None:
    prompt = "Say only the word yes."
    answer = ask_json("--max-tokens", "40", prompt)
    assert answer["finish_reason"] == "stop"  # the model ends its answer itself
    data = cli_json("next", "--steps", "40", "--top", "2", prompt)
    assert data["text"] == answer["text"]
    assert len(data["steps"]) == answer["stats"]["generated_tokens"] + 1
    last = data["steps"][-1]
    assert last["end_of_generation"] is True
    assert last["chosen"]["text"] == "<|im_end|>"


def test_next_table_in_a_pipe_marks_the_argmax_without_escape_codes() -> None:
    result = run_cli("next", "--raw", "--top", "3", "--steps", "2", "The capital of France is")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert ESC.decode() not in out
    assert out.count("▶") == 2
    assert "step 1 · position 5 · after “The␣capital␣of␣France␣is”" in out
    assert "␣Paris" in out and "%" in out
    assert "greedy continuation: “␣Paris.”" in out


def test_next_evaluates_only_the_new_token_at_each_step(model_path: Path) -> None:
    """The KV cache keeps the prompt: step k decodes one token, not the whole context."""
    from llmcli.cli.next_token import greedy_steps
    from llmcli.engine.base import LoadOptions
    from llmcli.engine.llama import LlamaEngine

    engine = LlamaEngine(model_path, LoadOptions(n_ctx=512))
    try:
        evaluated: list[int] = []
        original = engine._llama.eval

        def counting_eval(tokens):
            evaluated.append(len(tokens))
            return original(tokens)

        engine._llama.eval = counting_eval  # type: ignore[method-assign]
        prompt = engine.text_prompt("The capital of France is")
        run = greedy_steps(engine, prompt, steps=4, top=3)
    finally:
        engine.close()
    assert len(run.steps) == 4
    assert evaluated == [len(prompt), 1, 1, 1]


def test_next_refuses_prompt_plus_steps_beyond_the_context() -> None:
    result = run_cli("next", "--raw", "--ctx", "256", "--steps", "10", input="word " * 250)
    assert result.returncode == 65
    assert b"prompt plus --steps" in result.stderr


def test_next_help_says_where_the_probabilities_come_from() -> None:
    result = run_cli("next", "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0
    assert b"softmax of the model's raw logits" in result.stdout
