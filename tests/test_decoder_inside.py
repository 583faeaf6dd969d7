"""``llmcli lens``, ``embed`` and ``bench`` on the real SmolLM2 model (and ``embed`` remote)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from llmcli.errors import ExitStatus
from tests.conftest import run_cli
from tests.openai_stub import MODEL, OpenAIStub, status

PROMPT = "The capital of France is"


def cli_json(*args: str, input: str | None = None) -> dict:
    result = run_cli(*args, "--json", input=input)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


# -- lens ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lens_raw() -> dict:
    return cli_json("lens", "--raw", "--top", "3", PROMPT)


def test_lens_last_row_equals_next_top1_and_its_probability(lens_raw: dict) -> None:
    nxt = cli_json("next", "--raw", "--top", "3", PROMPT)
    expected = nxt["steps"][0]["candidates"]
    last = lens_raw["blocks"][-1]
    assert [t["id"] for t in last["top"]] == [c["id"] for c in expected]
    assert last["top"][0]["prob"] == pytest.approx(expected[0]["prob"], rel=1e-9, abs=1e-12)
    assert last["final_rank"] == 1 and last["source"] == "llama.cpp logits"
    assert lens_raw["final"]["id"] == expected[0]["id"] and lens_raw["final"]["text"] == " Paris"


def test_lens_has_one_row_per_block_through_the_models_own_head(
    lens_raw: dict, model_path: Path
) -> None:
    from llmcli.store.gguf import read_gguf

    blocks = read_gguf(model_path).block_count
    layers = lens_raw["blocks"]
    assert [row["block"] for row in layers] == list(range(blocks))
    assert all(row["source"] == "output norm + LM head" for row in layers[:-1])
    for row in layers:
        probs = [t["prob"] for t in row["top"]]
        assert probs == sorted(probs, reverse=True) and 0 < probs[0] <= 1
        assert row["final_rank"] >= 1
        assert math.isclose(math.exp(row["top"][0]["logprob"]), probs[0], rel_tol=1e-9)
    # Early blocks do not yet know the answer; the ranks are a real search, not all 1.
    assert layers[0]["final_rank"] > 10
    # Our dequantized norm + head on the last block lands close to llama.cpp's own logits.
    assert 0 <= lens_raw["final_max_logit_deviation"] < 1.0


def test_lens_chat_template_row_matches_next_and_table_in_a_pipe() -> None:
    nxt = cli_json("next", "--top", "1", "Hi")
    lens = cli_json("lens", "Hi")
    assert lens["blocks"][-1]["top"][0]["id"] == nxt["steps"][0]["candidates"][0]["id"]
    assert lens["blocks"][-1]["top"][0]["prob"] == pytest.approx(
        nxt["steps"][0]["candidates"][0]["prob"], rel=1e-9
    )
    table = run_cli("lens", "--raw", PROMPT)
    assert table.returncode == 0, table.stderr
    out = table.stdout.decode()
    assert b"\x1b" not in table.stdout
    assert "block" in out and "␣Paris" in out and "final prediction: ␣Paris" in out


def test_lens_bad_options_are_one_line_usage_errors() -> None:
    top = run_cli("lens", "--top", "0", "x")
    assert top.returncode == ExitStatus.USAGE and b"Traceback" not in top.stderr
    both = run_cli("lens", "--raw", "--system", "s", "x")
    assert both.returncode == ExitStatus.USAGE
    assert both.stderr.decode().strip().count("\n") <= 1 and b"--system" in both.stderr


# -- embed --------------------------------------------------------------------------


def _vectors(data: dict) -> list[np.ndarray]:
    return [np.asarray(e["embedding"]) for e in data["embeddings"]]


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("pooling", ["mean", "last", "cls"])
def test_embed_identical_texts_have_cosine_one_and_different_texts_differ(pooling: str) -> None:
    texts = ["I like cats", "I like cats", "The stock market fell sharply today"]
    data = cli_json("embed", "--pooling", pooling, "--no-normalize", *texts)
    a, b, c = _vectors(data)
    assert data["pooling"] == pooling and data["dimensions"] == 576 == a.shape[0]
    assert _cos(a, b) == pytest.approx(1.0, abs=1e-9)
    assert _cos(a, c) < 0.999
    assert data["embeddings"][0]["token_count"] == 3


def test_embed_reads_stdin_lines_and_normalizes_by_default() -> None:
    data = cli_json("embed", input="first line\n\nsecond line\n")
    assert [e["text"] for e in data["embeddings"]] == ["first line", "second line"]
    assert data["normalized"] is True
    for vector in _vectors(data):
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-9)


def test_embed_matrix_in_the_terminal_shows_cosines() -> None:
    result = run_cli("embed", "red apple", "red apple", "quantum physics")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "cosine similarity" in out and out.count("1.0000") >= 4


def test_embed_bad_pooling_and_nothing_to_embed_are_usage_errors() -> None:
    bad = run_cli("embed", "--pooling", "max", "x")
    assert bad.returncode == ExitStatus.USAGE and b"mean, last or cls" in bad.stderr
    empty = run_cli("embed", input="")
    assert empty.returncode == ExitStatus.USAGE and b"nothing to embed" in empty.stderr


def test_embed_with_keep_alive_runs_in_process_and_starts_no_server(llmcli_home: Path) -> None:
    """Embeddings need the model's native handles: ``keep_alive`` does not send embed to
    the engine server (which has none), and none is started."""
    from tests.serve_helpers import kill_servers, server_pids, warm_env

    try:
        result = run_cli("embed", "--json", "a cat", env=warm_env(llmcli_home))
        assert result.returncode == 0, result.stderr.decode()
        assert json.loads(result.stdout)["embeddings"][0]["token_count"] > 0  # local: counted
        assert server_pids(llmcli_home) == []
    finally:
        kill_servers(llmcli_home)


def test_embed_remote_posts_v1_embeddings_in_input_order() -> None:
    with OpenAIStub() as stub:
        env = {"LLMCLI_BASE_URL": stub.url}
        result = run_cli("embed", "--json", "b a", "a b", "c", env=env)
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        posts = [r for r in stub.requests if r.method == "POST"]
        assert [r.path for r in posts] == ["/v1/embeddings"]
        assert posts[0].body == {"model": MODEL, "input": ["b a", "a b", "c"]}
        first, second, third = _vectors(data)
        assert _cos(first, second) == pytest.approx(1.0)  # same words
        assert _cos(first, third) < 0.999
        assert data["pooling"] == "server" and data["embeddings"][2]["text"] == "c"

        stub.script(status(503), status(503), status(503), status(503))
        failed = run_cli("embed", "x", env=env)
        assert failed.returncode != 0 and b"Traceback" not in failed.stderr
        assert failed.stderr.decode().strip().count("\n") == 0


# -- bench --------------------------------------------------------------------------

BENCH_FIELDS = {
    "model",
    "ref",
    "path",
    "file_size",
    "parameters",
    "quantization",
    "backend",
    "gpu_offload_supported",
    "threads",
    "gpu_layers",
    "n_batch",
    "repetitions",
    "results",
}


def test_bench_json_has_the_documented_fields() -> None:
    data = cli_json("bench", "--pp", "32", "--tg", "4", "-r", "2", "--threads", "1")
    assert set(data) == BENCH_FIELDS
    assert data["threads"] == 1 and data["repetitions"] == 2 and data["backend"] == "CPU"
    assert [r["test"] for r in data["results"]] == ["pp32", "tg4"]
    for result in data["results"]:
        assert set(result) == {"test", "n_prompt", "n_gen", "tokens_per_s", "samples_s"}
        tps = result["tokens_per_s"]
        assert set(tps) == {"min", "median", "mean", "max", "stdev"}
        assert 0 < tps["min"] <= tps["median"] <= tps["max"]
        assert len(result["samples_s"]) == 2 and all(s > 0 for s in result["samples_s"])
        n = result["n_prompt"] or result["n_gen"]
        assert tps["max"] == pytest.approx(n / min(result["samples_s"]))


def test_bench_table_and_bad_values() -> None:
    table = run_cli("bench", "--pp", "16", "--tg", "0", "-r", "1")
    assert table.returncode == 0, table.stderr
    assert b"pp16" in table.stdout and b"t/s median" in table.stdout and b"tg" not in table.stdout
    nothing = run_cli("bench", "--pp", "0", "--tg", "0")
    assert nothing.returncode == ExitStatus.USAGE and b"nothing to measure" in nothing.stderr
    gpu = run_cli("bench", "--gpu-layers", "lots")
    assert gpu.returncode == ExitStatus.USAGE and b"--gpu-layers" in gpu.stderr
