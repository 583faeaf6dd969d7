"""LoRA adapters: written here with the ``gguf`` package, applied to the real SmolLM2.

Shape convention (checked by ``test_gguf_writer_reverses_numpy_shapes_into_ggml_order``):
``GGUFWriter`` stores a numpy array of shape ``(rows, cols)`` as ggml ``ne = (cols, rows)``.
llama.cpp wants ``W.lora_a`` with ``ne = (n_in, rank)`` and ``W.lora_b`` with
``ne = (rank, n_out)``, so the numpy arrays are ``A: (rank, n_in)`` and ``B: (n_out, rank)``
— the same layout as PEFT's ``lora_A.weight`` / ``lora_B.weight``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from llmcli.cli.loading import parse_lora
from llmcli.engine.base import LoraSpec
from llmcli.errors import DataError, UsageError
from llmcli.store.adapters import check_adapter
from llmcli.store.gguf import read_gguf
from tests import gguf_factory as gf
from tests.conftest import run_cli

PROMPT = "The capital of France is"
HIDDEN = 576  # SmolLM2-135M's embedding size
N_BLOCKS = 30


def write_adapter(
    path: Path,
    *,
    rank: int = 4,
    hidden: int = HIDDEN,
    seed: int = 0,
    alpha: float = 8.0,
    architecture: str = "llama",
    n_blocks: int = N_BLOCKS,
    std: float = 0.5,
) -> Path:
    """A random rank-``rank`` LoRA on every block's attention query weight (576 → 576)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    rng = np.random.default_rng(seed)
    for block in range(n_blocks):
        name = f"blk.{block}.attn_q.weight"
        a = (rng.standard_normal((rank, hidden)) * std).astype(np.float32)
        b = (rng.standard_normal((hidden, rank)) * std).astype(np.float32)
        writer.add_tensor(name + ".lora_a", a)
        writer.add_tensor(name + ".lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("adapters")
    return {
        "one": write_adapter(tmp / "one.gguf", seed=1),
        "two": write_adapter(tmp / "two.gguf", seed=2, rank=8),
        "wide": write_adapter(tmp / "wide.gguf", hidden=960),  # SmolLM2-360M's size
        "qwen": write_adapter(tmp / "qwen.gguf", architecture="qwen2"),
        "deep": write_adapter(tmp / "deep.gguf", n_blocks=32),  # blocks the model lacks
    }


def greedy(*args: str, tokens: int = 8) -> str:
    result = run_cli("ask", "--raw", "--greedy", "--max-tokens", str(tokens), *args, PROMPT)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


@pytest.fixture(scope="module")
def base_answer() -> str:
    return greedy()


# -- the file format --------------------------------------------------------------------


def test_gguf_writer_reverses_numpy_shapes_into_ggml_order(
    adapters: dict[str, Path], model_path: Path
) -> None:
    header = read_gguf(adapters["one"])
    shapes = {t.name: t.shape for t in header.tensors}
    assert shapes["blk.0.attn_q.weight.lora_a"] == (HIDDEN, 4)  # ne = (n_in, rank)
    assert shapes["blk.0.attn_q.weight.lora_b"] == (4, HIDDEN)  # ne = (rank, n_out)
    assert header.metadata["general.type"] == "adapter"
    assert header.metadata["adapter.type"] == "lora"
    info = check_adapter(adapters["one"], read_gguf(model_path))
    assert info.ranks == (4,) and info.alpha == 8.0
    assert info.targets[0] == "blk.0.attn_q.weight" and len(info.targets) == N_BLOCKS


def test_models_show_describes_an_adapter(adapters: dict[str, Path]) -> None:
    result = run_cli("models", "show", "--json", str(adapters["two"]))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["type"] == "adapter"
    assert data["lora_rank"] == 8 and data["lora_alpha"] == 8.0
    assert data["target_tensors"] == ["blk.*.attn_q.weight"]


# -- applying adapters --------------------------------------------------------------------


@pytest.mark.slow
def test_scale_zero_is_the_base_model_and_scale_one_changes_it(
    adapters: dict[str, Path], base_answer: str
) -> None:
    assert base_answer.startswith(" Paris")
    assert greedy("--lora", f"{adapters['one']}:0") == base_answer
    assert greedy("--lora", str(adapters["one"])) != base_answer


@pytest.mark.slow
def test_two_adapters_at_once(adapters: dict[str, Path], base_answer: str) -> None:
    one = greedy("--lora", str(adapters["one"]))
    both = greedy("--lora", str(adapters["one"]), "--lora", f"{adapters['two']}:0.5")
    assert both not in (base_answer, one)
    # an adapter at scale 0 beside another leaves that other's output unchanged
    assert greedy("--lora", str(adapters["one"]), "--lora", f"{adapters['two']}:0") == one


@pytest.mark.slow
def test_next_applies_adapters_too(adapters: dict[str, Path]) -> None:
    def top(*lora: str) -> list[dict]:
        result = run_cli("next", "--raw", "--json", "--top", "3", *lora, PROMPT)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["steps"][0]["candidates"]  # type: ignore[no-any-return]

    base = top()
    assert top("--lora", f"{adapters['one']}:0") == base
    assert top("--lora", str(adapters["one"])) != base


def test_scale_changes_without_reloading_the_model(
    adapters: dict[str, Path], model_path: Path
) -> None:
    from llmcli.engine.base import LoadOptions, Sampling
    from llmcli.engine.llama import LlamaEngine

    def run(engine: LlamaEngine) -> str:
        return engine.generate(
            engine.text_prompt(PROMPT), Sampling(greedy=True, max_tokens=8)
        ).text()

    spec = LoraSpec(adapters["one"], 0.0)
    engine = LlamaEngine(model_path, LoadOptions(n_ctx=256, loras=(spec,)))
    fresh = LlamaEngine(model_path, LoadOptions(n_ctx=256, loras=(LoraSpec(spec.path, 1.0),)))
    try:
        base = run(engine)
        scaled = run(fresh)
        assert scaled != base
        engine.set_lora_scale(0, 1.0)
        assert engine.loras == (LoraSpec(spec.path, 1.0),)
        # the same prompt again: the KV cache from scale 0 must not be reused
        assert run(engine) == scaled
        engine.set_lora_scale(0, 0.0)
        assert run(engine) == base
        with pytest.raises(UsageError):
            engine.set_lora_scale(1, 1.0)
    finally:
        engine.close()
        fresh.close()


# -- refusing adapters that do not fit -----------------------------------------------------


def refused(*args: str) -> str:
    result = run_cli("ask", "--max-tokens", "4", *args, "hello")
    assert result.returncode == 65, result.stderr
    assert result.stdout == b""  # refused before generating anything
    message = result.stderr.decode()
    assert "Traceback" not in message
    assert len(message.strip().splitlines()) == 1
    return message


def test_adapter_for_other_shapes_is_refused_with_the_tensor_and_shapes(
    adapters: dict[str, Path],
) -> None:
    message = refused("--lora", str(adapters["wide"]))
    assert "wide.gguf does not fit SmolLM2-135M-Instruct.Q4_1.gguf" in message
    assert "blk.0.attn_q.weight is 576×576 in the model" in message
    assert "960×4" in message and "expected 576×4" in message


def test_adapter_for_another_architecture_is_refused(adapters: dict[str, Path]) -> None:
    message = refused("--lora", str(adapters["one"]), "--lora", str(adapters["qwen"]))
    assert "made for a qwen2 model but the model is llama" in message


def test_adapter_for_a_deeper_model_is_refused(adapters: dict[str, Path]) -> None:
    message = refused("--lora", str(adapters["deep"]))
    assert "blk.30.attn_q.weight, which the model does not have" in message


def test_a_model_passed_as_adapter_is_refused(model_path: Path) -> None:
    message = refused("--lora", str(model_path))
    assert "is a model, not a LoRA adapter" in message


def test_next_refuses_a_mismatched_adapter_too(adapters: dict[str, Path]) -> None:
    result = run_cli("next", "--lora", str(adapters["wide"]), "hello")
    assert result.returncode == 65
    assert b"does not fit" in result.stderr


def test_missing_adapter_file_names_the_fix(tmp_path: Path) -> None:
    result = run_cli("ask", "--lora", str(tmp_path / "nope.gguf"), "hello")
    assert result.returncode == 1
    assert b"LoRA adapter" in result.stderr and b"does not exist" in result.stderr


# -- the header check alone (pure Python, synthetic headers) ------------------------------


@pytest.fixture(scope="module")
def base_header(model_path: Path):
    return read_gguf(model_path)


def test_check_accepts_llama_cpp_layout_for_every_projection(tmp_path: Path, base_header) -> None:
    path = gf.write_lora_adapter(tmp_path / "all.gguf", targets=tuple(gf.SMOLLM2_PROJECTIONS))
    info = check_adapter(path, base_header)
    assert len(info.targets) == N_BLOCKS * len(gf.SMOLLM2_PROJECTIONS)


def _adapter_with(path: Path, tensors: Sequence[gf.TensorSpec], kind: str = "lora") -> Path:
    kvs = [
        gf.kv("general.architecture", gf.STRING, "llama"),
        gf.kv("general.type", gf.STRING, "adapter"),
        gf.kv("adapter.type", gf.STRING, kind),
        gf.kv("adapter.lora.alpha", gf.FLOAT32, 16.0),
    ]
    return gf.write_gguf(path, kvs, tensors)


def test_check_token_embedding_layout(tmp_path: Path, base_header) -> None:
    """llama.cpp stores the embedding's pair flipped: a is (rank, vocab), b (rank, hidden)."""
    good = _adapter_with(
        tmp_path / "embd.gguf",
        [
            ("token_embd.weight.lora_a", (8, 49152), gf.F32),
            ("token_embd.weight.lora_b", (8, HIDDEN), gf.F32),
        ],
    )
    assert check_adapter(good, base_header).ranks == (8,)
    bad = _adapter_with(
        tmp_path / "embd-bad.gguf",
        [
            ("token_embd.weight.lora_a", (HIDDEN, 8), gf.F32),
            ("token_embd.weight.lora_b", (8, 49152), gf.F32),
        ],
    )
    with pytest.raises(DataError, match="token_embd.weight is 576×49152"):
        check_adapter(bad, base_header)


@pytest.mark.parametrize(
    ("tensors", "kind", "problem"),
    [
        ([("blk.0.attn_q.weight.lora_a", (HIDDEN, 4), gf.F32)], "lora", "lora_b is missing"),
        (
            [
                ("blk.0.attn_q.weight.lora_a", (HIDDEN, 4), gf.F32),
                ("blk.0.attn_q.weight.lora_b", (8, HIDDEN), gf.F32),
            ],
            "lora",
            "expected 576×4 and 4×576",
        ),
        ([("blk.0.attn_q.weight", (HIDDEN, HIDDEN), gf.F32)], "lora", "not part of a LoRA pair"),
        ([], "lora", "has no LoRA tensors"),
        ([("blk.0.attn_q.weight.lora_a", (HIDDEN, 4), gf.F32)], "control", "'control' adapter"),
    ],
)
def test_check_refuses_broken_adapters(
    tmp_path: Path, base_header, tensors: list[gf.TensorSpec], kind: str, problem: str
) -> None:
    path = _adapter_with(tmp_path / "broken.gguf", tensors, kind)
    with pytest.raises(DataError, match=problem):
        check_adapter(path, base_header)


def test_check_ignores_norm_vectors_as_llama_cpp_does(tmp_path: Path, base_header) -> None:
    path = _adapter_with(
        tmp_path / "norm.gguf",
        [
            ("blk.0.attn_norm.weight", (HIDDEN,), gf.F32),
            ("blk.0.attn_q.weight.lora_a", (HIDDEN, 4), gf.F32),
            ("blk.0.attn_q.weight.lora_b", (4, HIDDEN), gf.F32),
        ],
    )
    assert check_adapter(path, base_header).targets == ("blk.0.attn_q.weight",)


# -- parsing --lora ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path", "scale"),
    [
        ("style.gguf", "style.gguf", 1.0),
        ("style.gguf:0.5", "style.gguf", 0.5),
        ("style.gguf:-1", "style.gguf", -1.0),
        ("acme/style-lora-GGUF:Q8_0", "acme/style-lora-GGUF:Q8_0", 1.0),
        ("acme/style-lora-GGUF:Q8_0:0.25", "acme/style-lora-GGUF:Q8_0", 0.25),
        ("C:\\adapters\\style.gguf", "C:\\adapters\\style.gguf", 1.0),
    ],
)
def test_parse_lora(value: str, path: str, scale: float) -> None:
    assert parse_lora(value) == LoraSpec(Path(path), scale)


@pytest.mark.parametrize("value", ["style.gguf:nan", "style.gguf:inf", ":0.5", ""])
def test_parse_lora_refuses_nonsense(value: str) -> None:
    with pytest.raises(UsageError):
        parse_lora(value)


# -- adapters pulled from the Hub --------------------------------------------------------------


def test_pulled_adapter_works_by_path_and_by_reference(
    adapters: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    base_answer: str,
) -> None:
    from tests.hub_server import online_hub, run_llmcli

    repo = "acme/capital-lora-GGUF"
    with online_hub(monkeypatch, tmp_path) as hub:
        hub.add_repo(repo, {"capital-lora-F32.gguf": adapters["one"].read_bytes()})
        pulled = run_llmcli("pull", repo)
    assert pulled.returncode == 0, pulled.stderr
    path = pulled.stdout.strip()
    by_path = greedy("--lora", path)
    assert by_path != base_answer
    assert greedy("--lora", repo) == by_path
    assert greedy("--lora", f"{repo}:0") == base_answer
