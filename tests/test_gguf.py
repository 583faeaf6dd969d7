"""The GGUF header reader and the anatomy, on the real SmolLM2 file and on synthetic files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

import llmcli.store.gguf as gguf_module
from llmcli.errors import ModelNotFound
from llmcli.store.anatomy import as_dict, build_anatomy
from llmcli.store.gguf import check_model_file, read_gguf
from llmcli.store.gguf_header import GGUFError, GGUFFile, TensorInfo
from llmcli.store.model_summary import summary
from tests import gguf_factory as gf

SMOLLM2_PARAMS = 134_515_008


@pytest.fixture(scope="module")
def smollm2(model_path: Path) -> GGUFFile:
    return read_gguf(model_path)


def test_smollm2_header_facts(smollm2: GGUFFile, model_path: Path) -> None:
    assert smollm2.version == 3
    assert smollm2.architecture == "llama"
    assert smollm2.block_count == 30
    assert smollm2.context_length == 8192
    assert smollm2.arch_value("attention.head_count") == 9
    assert smollm2.arch_value("attention.head_count_kv") == 3
    assert smollm2.arch_value("embedding_length") == 576
    assert smollm2.arch_value("feed_forward_length") == 1536
    assert len(smollm2.metadata["tokenizer.ggml.tokens"]) == 49152
    assert smollm2.metadata["tokenizer.ggml.tokens"][:3] == [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
    ]
    assert smollm2.parameter_count == SMOLLM2_PARAMS
    assert smollm2.file_type_name == "Q4_1"
    assert smollm2.file_size == model_path.stat().st_size
    assert len(smollm2.tensors) == 272
    assert not smollm2.is_lora_adapter
    assert smollm2.alignment == 32
    assert smollm2.data_offset % 32 == 0


def test_smollm2_tensor_table(smollm2: GGUFFile) -> None:
    embd = smollm2.tensors[0]
    assert embd == TensorInfo("token_embd.weight", (576, 49152), 8, 0)
    assert (embd.type_name, embd.n_elements, embd.n_bytes) == ("Q8_0", 28_311_552, 30_081_024)
    q = next(t for t in smollm2.tensors if t.name == "blk.0.attn_q.weight")
    assert (q.shape, q.type_name, q.n_bytes) == ((576, 576), "Q4_1", 576 * 576 // 32 * 20)
    norm = next(t for t in smollm2.tensors if t.name == "output_norm.weight")
    assert (norm.shape, norm.type_name, norm.n_bytes) == ((576,), "F32", 576 * 4)
    last = max(smollm2.tensors, key=lambda t: t.offset)
    assert smollm2.data_offset + last.offset + last.n_bytes == smollm2.file_size


def test_smollm2_chat_template(smollm2: GGUFFile) -> None:
    template = smollm2.chat_template
    assert template is not None and "<|im_start|>" in template
    assert smollm2.template_sha256 == hashlib.sha256(template.encode()).hexdigest()


def test_float32_metadata_reads_as_the_written_decimal(smollm2: GGUFFile) -> None:
    assert smollm2.arch_value("attention.layer_norm_rms_epsilon") == 1e-05
    assert smollm2.arch_value("rope.freq_base") == 100000.0


def test_agrees_with_the_gguf_package(smollm2: GGUFFile, model_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    reference = gguf.GGUFReader(model_path)
    assert reference.data_offset == smollm2.data_offset
    assert [t.name for t in reference.tensors] == [t.name for t in smollm2.tensors]
    for ref, mine in zip(reference.tensors, smollm2.tensors, strict=True):
        assert int(ref.data_offset) == smollm2.data_offset + mine.offset
        assert int(ref.n_bytes) == mine.n_bytes
        assert int(ref.tensor_type) == mine.ggml_type
        assert [int(d) for d in ref.shape] == list(mine.shape)
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type"):
        assert reference.fields[key].contents() == smollm2.metadata[key]
    assert set(reference.fields) - {"GGUF.version", "GGUF.tensor_count", "GGUF.kv_count"} == set(
        smollm2.metadata
    )


def test_reads_only_the_header(model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 98 MB file is read through its ~1.8 MB header plus at most one read-ahead chunk."""
    read_sizes: list[int] = []
    real_fdopen = os.fdopen

    class Counting:
        def __init__(self, raw: Any) -> None:
            self.raw = raw

        def read(self, n: int) -> bytes:
            data = self.raw.read(n)
            read_sizes.append(len(data))
            return bytes(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.raw, name)

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: object) -> None:
            self.raw.close()

    monkeypatch.setattr(
        gguf_module.os, "fdopen", lambda *a, **k: Counting(real_fdopen(*a, **k)), raising=True
    )
    result = read_gguf(model_path)
    assert sum(read_sizes) <= result.data_offset + (1 << 20)
    assert sum(read_sizes) < result.file_size // 10


def test_anatomy_of_smollm2_adds_up(smollm2: GGUFFile) -> None:
    anatomy = build_anatomy(smollm2)
    parts = anatomy.components()
    assert sum(parts.values()) == anatomy.total_parameters == SMOLLM2_PARAMS
    assert parts == {
        "embedding": 49152 * 576,
        "attention": 30 * (2 * 576 * 576 + 2 * 576 * 192),
        "mlp": 30 * 3 * 576 * 1536,
        "block_norms": 30 * 2 * 576,
        "block_other": 0,
        "output_norm": 576,
        "lm_head": 0,
        "other": 0,
    }
    att = anatomy.blocks.attention
    assert (att.n_heads, att.n_kv_heads, att.gqa_ratio, att.head_dim) == (9, 3, 3, 64)
    assert (att.rope_freq_base, att.rope_dimensions) == (100000.0, 64)
    assert [r.name for r in att.weights.roles] == [
        "attn_q.weight",
        "attn_k.weight",
        "attn_v.weight",
        "attn_output.weight",
    ]
    assert att.weights.quant == ("Q4_1",)
    assert anatomy.blocks.count == 30
    assert (anatomy.blocks.mlp.hidden_size, anatomy.blocks.mlp.ffn_size) == (576, 1536)
    assert (anatomy.blocks.norms.kind, anatomy.blocks.norms.epsilon) == ("RMSNorm", 1e-05)
    assert (anatomy.embedding.vocab_size, anatomy.embedding.hidden_size) == (49152, 576)
    assert anatomy.embedding.weights.quant == ("Q8_0",)
    assert anatomy.lm_head.tied


def test_anatomy_as_dict_carries_group_totals(smollm2: GGUFFile) -> None:
    data = as_dict(build_anatomy(smollm2))
    assert data["blocks"]["mlp"]["weights"]["parameters"] == 30 * 3 * 576 * 1536
    assert data["blocks"]["attention"]["weights"]["tensors"][0]["shape"] == [576, 576]
    assert sum(data["components"].values()) == data["total_parameters"] == SMOLLM2_PARAMS


def test_summary_of_smollm2(smollm2: GGUFFile) -> None:
    facts = summary(smollm2)
    expected = {
        "architecture": "llama",
        "block_count": 30,
        "head_count": 9,
        "head_count_kv": 3,
        "embedding_length": 576,
        "feed_forward_length": 1536,
        "vocab_size": 49152,
        "context_length": 8192,
        "parameters": SMOLLM2_PARAMS,
        "quantization": "Q4_1",
        "tokenizer_model": "gpt2",
        "license": "apache-2.0",
        "rope_freq_base": 100000.0,
        "rope_dimension_count": 64,
        "chat_template_sha256": smollm2.template_sha256,
        "file_size": smollm2.file_size,
        "type": "model",
    }
    assert {key: facts[key] for key in expected} == expected


def test_vocab_size_matches_llama_cpp(model_path: Path, smollm2: GGUFFile) -> None:
    """The header's vocabulary is the one llama.cpp loads (vocab_only: no weights)."""
    llama_cpp = pytest.importorskip("llama_cpp")
    llm = llama_cpp.Llama(model_path=str(model_path), vocab_only=True, verbose=False)
    try:
        assert llm.n_vocab() == summary(smollm2)["vocab_size"]
        assert llm.metadata["llama.context_length"] == str(smollm2.context_length)
        assert llm.metadata["tokenizer.chat_template"] == smollm2.chat_template
    finally:
        llm.close()


def test_tiny_llama_untied_head(tmp_path: Path) -> None:
    path = gf.write_tiny_llama(tmp_path / "tiny.gguf", tied=False, n_blocks=3, vocab=40)
    gguf = read_gguf(path)
    anatomy = build_anatomy(gguf)
    assert not anatomy.lm_head.tied
    assert anatomy.lm_head.weights.parameters == 64 * 40
    assert anatomy.blocks.count == 3
    assert anatomy.blocks.attention.gqa_ratio == 2
    assert sum(anatomy.components().values()) == gguf.parameter_count
    assert summary(gguf)["tied_embeddings"] is False


def test_quantization_falls_back_to_dominant_tensor_type(tmp_path: Path) -> None:
    path = gf.write_gguf(
        tmp_path / "m.gguf",
        [gf.kv("general.architecture", gf.STRING, "llama")],
        [("a.weight", (64,), gf.F32), ("b.weight", (64, 64), gf.Q8_0)],
    )
    gguf = read_gguf(path)
    assert gguf.file_type_name == "Q8_0"
    assert gguf.name == "m"  # no general.name: the file's stem
    assert gguf.context_length is None and gguf.chat_template is None
    assert gguf.template_sha256 is None


def test_lora_adapter_summary(tmp_path: Path) -> None:
    path = gf.write_lora_adapter(tmp_path / "lora.gguf", rank=8, alpha=16.0, n_blocks=2)
    gguf = read_gguf(path)
    assert gguf.is_lora_adapter
    facts = summary(gguf)
    assert facts["type"] == "adapter"
    assert facts["adapter_type"] == "lora"
    assert facts["lora_alpha"] == 16.0
    assert facts["lora_rank"] == 8
    assert facts["target_tensors"] == ["blk.*.attn_q.weight", "blk.*.attn_v.weight"]


def test_check_model_file_refuses_an_adapter(tmp_path: Path) -> None:
    path = gf.write_lora_adapter(tmp_path / "lora.gguf", n_blocks=1)
    with pytest.raises(GGUFError, match="LoRA adapter, not a model") as info:
        check_model_file(path)
    assert str(path) in info.value.message


def test_check_model_file_errors(tmp_path: Path, model_path: Path) -> None:
    assert check_model_file(model_path).parameter_count == SMOLLM2_PARAMS
    with pytest.raises(ModelNotFound, match="does not exist"):
        check_model_file(tmp_path / "missing.gguf")
    with pytest.raises(GGUFError, match="is a directory"):
        check_model_file(tmp_path)
    vocab_only = gf.write_gguf(tmp_path / "vocab.gguf", [gf.kv("general.type", gf.STRING, "model")])
    with pytest.raises(GGUFError, match="no tensors"):
        check_model_file(vocab_only)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = gf.write_tiny_llama(tmp_path / "secret.gguf")
    path.chmod(0)
    try:
        for reader in (read_gguf, check_model_file):
            with pytest.raises(GGUFError, match="not readable"):
                reader(path)
    finally:
        path.chmod(0o600)


def test_factory_files_are_real_gguf(tmp_path: Path) -> None:
    """What tests/gguf_factory.py writes, the reference reader reads the same way."""
    gguf = pytest.importorskip("gguf")
    paths = [
        gf.write_tiny_llama(tmp_path / "tiny.gguf", ggml_type=gf.Q8_0, hidden=64, ffn=128),
        gf.write_lora_adapter(tmp_path / "lora.gguf", n_blocks=2),
    ]
    for path in paths:
        reference = gguf.GGUFReader(path)
        mine = read_gguf(path)
        assert reference.data_offset == mine.data_offset
        assert [(t.name, int(t.n_bytes)) for t in reference.tensors] == [
            (t.name, t.n_bytes) for t in mine.tensors
        ]


@pytest.mark.parametrize("endian", ["LITTLE", "BIG"])
def test_reads_files_written_by_the_gguf_package(tmp_path: Path, endian: str) -> None:
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    path = tmp_path / f"{endian}.gguf"
    writer = gguf.GGUFWriter(path, "llama", endianess=getattr(gguf.GGUFEndian, endian))
    writer.add_block_count(1)
    writer.add_context_length(512)
    writer.add_token_list(["a", "b", "c"])
    writer.add_chat_template("{{ messages }}")
    writer.add_tensor("token_embd.weight", np.zeros((3, 8), dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((8, 8), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    result = read_gguf(path)
    assert result.byte_order == endian.lower()
    assert (result.architecture, result.block_count, result.context_length) == ("llama", 1, 512)
    assert result.metadata["tokenizer.ggml.tokens"] == ["a", "b", "c"]
    assert result.chat_template == "{{ messages }}"
    assert [(t.name, t.shape, t.type_name) for t in result.tensors] == [
        ("token_embd.weight", (8, 3), "F32"),
        ("blk.0.attn_q.weight", (8, 8), "F16"),
    ]
    assert result.parameter_count == 24 + 64
