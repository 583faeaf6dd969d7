"""Hostile and damaged GGUF files: every one is refused with a GGUFError that names the file.

Hand-built files each break one field; Hypothesis then throws random bytes and
mutated copies of the real SmolLM2 header at the reader, which must either parse
or raise GGUFError, never crash, hang or allocate without bound.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from llmcli.store.gguf import read_gguf
from llmcli.store.gguf_header import GGUFError
from tests import gguf_factory as gf

ARCH = gf.kv("general.architecture", gf.STRING, "llama")


def refused(path: Path, match: str) -> GGUFError:
    with pytest.raises(GGUFError, match=match) as info:
        read_gguf(path)
    assert str(path) in info.value.message
    assert info.value.hint
    assert info.value.status == 65
    return info.value


@pytest.fixture(scope="module")
def real_header(model_path: Path) -> bytes:
    """The real model's header (metadata + tensor table, ~1.8 MB)."""
    return model_path.read_bytes()[: read_gguf(model_path).data_offset]


def test_not_gguf(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    error = refused(path, "is not a GGUF file")
    assert error.message == f"{path} is not a GGUF file (it looks like a zip archive)"
    path.write_bytes(b"# llmcli\n\nRun quantized decoder LLMs")
    assert refused(path, "is not a GGUF file").message == (
        f"{path} is not a GGUF file (it looks like text, not a model)"
    )
    path.write_bytes(bytes(range(200, 256)) * 4)
    assert refused(path, "is not a GGUF file").message == (
        f"{path} is not a GGUF file (it does not start with the GGUF signature)"
    )


@pytest.mark.parametrize("content", [b"", b"GG", b"GGUF", b"GGUF\x03\x00\x00"])
def test_tiny_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(content)
    refused(path, "not a GGUF file|truncated")


@pytest.mark.parametrize(("version", "hint"), [(1, "August 2023"), (4, "upgrade"), (0, "")])
def test_unsupported_versions(tmp_path: Path, version: int, hint: str) -> None:
    path = tmp_path / f"v{version}.gguf"
    path.write_bytes(gf.header(0, 0, version=version) + b"\0" * 64)
    error = refused(path, f"GGUF version {version} is not supported")
    assert hint in (error.hint or "")


@pytest.mark.parametrize("cut", [8, 23, 24, 100, 4096, 65536, 1_000_000, -1000, -1])
def test_truncated_copies_of_the_real_model(tmp_path: Path, model_path: Path, cut: int) -> None:
    """A download cut anywhere (in the header, or in the tensor data) is refused."""
    data = model_path.read_bytes()
    path = tmp_path / "cut.gguf"
    path.write_bytes(data[:cut])
    refused(path, "truncated")


def test_truncated_right_after_the_header(tmp_path: Path, real_header: bytes) -> None:
    path = tmp_path / "header-only.gguf"
    path.write_bytes(real_header)
    error = refused(path, "tensor 'token_embd.weight' data ends at byte")
    assert "redownload" in (error.hint or "").replace(" ", "") or "download" in (error.hint or "")


def test_absurd_tensor_count(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(gf.header(2**63, 0) + b"\0" * 64)
    refused(path, "tensor count 9,223,372,036,854,775,808 is absurd")


def test_tensor_count_larger_than_the_file_can_hold(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(gf.header(100_000, 0) + b"\0" * 64)
    refused(path, "tensor count 100,000 cannot fit")


def test_absurd_kv_count(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(gf.header(0, 2**40) + b"\0" * 64)
    refused(path, "metadata key count .* is absurd")


def test_absurd_key_length(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(gf.header(0, 1) + gf.gguf_string("k", declared_length=2**62) + b"\0" * 64)
    refused(path, "metadata key is 4,611,686,018,427,387,904 bytes long")


def test_absurd_string_value_length(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    body = gf.gguf_string("general.name") + struct.pack("<I", gf.STRING)
    body += gf.gguf_string("x", declared_length=2**40)
    path.write_bytes(gf.header(0, 1) + body + b"\0" * 64)
    refused(path, "'general.name' is 1,099,511,627,776 bytes long")


def test_string_longer_than_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    body = gf.gguf_string("general.name") + struct.pack("<I", gf.STRING)
    body += gf.gguf_string("x", declared_length=1_000_000)
    path.write_bytes(gf.header(0, 1) + body + b"\0" * 64)
    refused(path, "truncated")


@pytest.mark.parametrize("count", [3_000_000_000, 2**64 - 1])
def test_absurd_array_length(tmp_path: Path, count: int) -> None:
    """A tokenizer array of billions of strings is refused before a single one is read."""
    path = tmp_path / "m.gguf"
    body = gf.gguf_string("tokenizer.ggml.tokens") + struct.pack("<IIQ", gf.ARRAY, gf.STRING, count)
    path.write_bytes(gf.header(0, 1) + body + b"\0" * 64)
    refused(path, "'tokenizer.ggml.tokens' is an array of .* items")


def test_array_longer_than_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    body = gf.gguf_string("scores") + struct.pack("<IIQ", gf.ARRAY, gf.FLOAT32, 1_000_000)
    path.write_bytes(gf.header(0, 1) + body + b"\0" * 64)
    refused(path, "more than the file can hold")


def test_deeply_nested_arrays(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    nest = struct.pack("<IQ", gf.ARRAY, 1) * 10 + struct.pack("<IQ", gf.UINT8, 0)
    body = gf.gguf_string("deep") + struct.pack("<I", gf.ARRAY) + nest
    path.write_bytes(gf.header(0, 1) + body + b"\0" * 64)
    refused(path, "nests arrays deeper")


def test_string_in_array_too_long(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    body = gf.gguf_string("tokens") + struct.pack("<IIQ", gf.ARRAY, gf.STRING, 2)
    body += gf.gguf_string("ok") + gf.gguf_string("x", declared_length=2**50)
    path.write_bytes(gf.header(0, 1) + body + b"\0" * 64)
    refused(path, "a string in metadata 'tokens' is")


@pytest.mark.parametrize("value_type", [13, 2**32 - 1])
def test_unknown_value_type(tmp_path: Path, value_type: int) -> None:
    path = tmp_path / "m.gguf"
    body = gf.gguf_string("key") + struct.pack("<I", value_type) + b"\0" * 64
    path.write_bytes(gf.header(0, 1) + body)
    refused(path, f"unknown value type {value_type}")


def test_duplicate_key(tmp_path: Path) -> None:
    path = gf.write_gguf(tmp_path / "m.gguf", [ARCH, ARCH])
    refused(path, "duplicate metadata key 'general.architecture'")


def test_thousands_of_dims(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    row = gf.gguf_string("t") + struct.pack("<I", 5000) + struct.pack("<Q", 1) * 5000
    path.write_bytes(gf.header(1, 0) + row + struct.pack("<IQ", 0, 0) + b"\0" * 64)
    refused(path, "tensor 't' has 5,000 dimensions")


def test_zero_dimension(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(gf.header(1, 0) + gf.tensor_info("t", (4, 0), gf.F32, 0) + b"\0" * 64)
    refused(path, "empty or negative dimension")


def test_absurd_shape(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    shape = (2**40, 2**40, 2**40, 2**40)
    path.write_bytes(gf.header(1, 0) + gf.tensor_info("t", shape, gf.F32, 0) + b"\0" * 64)
    refused(path, "absurd shape")


def test_unknown_ggml_type(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(gf.header(1, 0) + gf.tensor_info("t", (32,), 99, 0) + b"\0" * 256)
    refused(path, "unknown ggml type 99")


def test_row_not_a_multiple_of_the_block(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(gf.header(1, 0) + gf.tensor_info("t", (33, 2), gf.Q4_1, 0) + b"\0" * 256)
    refused(path, "not a multiple of the Q4_1 block")


def test_misaligned_offset(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(gf.header(1, 0) + gf.tensor_info("t", (4,), gf.F32, 7) + b"\0" * 256)
    refused(path, "offset 7 is not aligned to 32")


@pytest.mark.parametrize("alignment", [0, 3, 2**31])
def test_bad_alignment(tmp_path: Path, alignment: int) -> None:
    kvs = [gf.kv("general.alignment", gf.UINT32, alignment)]
    path = gf.write_gguf(tmp_path / "m.gguf", kvs, [("t", (4,), gf.F32)])
    refused(path, "general.alignment")


def test_alignment_of_the_wrong_type(tmp_path: Path) -> None:
    kvs = [gf.kv("general.alignment", gf.STRING, "32")]
    path = gf.write_gguf(tmp_path / "m.gguf", kvs, [("t", (4,), gf.F32)])
    refused(path, "general.alignment '32'")


def test_duplicate_tensor_name(tmp_path: Path) -> None:
    path = gf.write_gguf(tmp_path / "m.gguf", [], [("t", (4,), gf.F32), ("t", (4,), gf.F32)])
    refused(path, "duplicate tensor name 't'")


def test_tensor_data_outside_the_file(tmp_path: Path) -> None:
    head = gf.header(1, 0) + gf.tensor_info("w", (64, 64), gf.F32, 2**40)
    path = tmp_path / "m.gguf"
    path.write_bytes(head + b"\0" * (64 * 64 * 4 + 64))
    refused(path, "tensor 'w' data ends at byte 1,099,511,6")


def test_metadata_budget(tmp_path: Path, model_path: Path) -> None:
    """``max_metadata_bytes`` stops reading a header that is larger than the caller allows."""
    with pytest.raises(GGUFError, match="larger than 100,000 bytes"):
        read_gguf(model_path, max_metadata_bytes=100_000)


def test_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    mkfifo = getattr(__import__("os"), "mkfifo", None)
    if mkfifo is None:
        pytest.skip("no FIFOs here")
    path = tmp_path / "pipe.gguf"
    mkfifo(path)
    refused(path, "not a regular file")


def test_directory_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, "is a directory")


# --- property tests -----------------------------------------------------------------------------

FUZZ = settings(
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _parses_or_refuses(path: Path) -> None:
    try:
        read_gguf(path)
    except GGUFError as error:
        assert str(path) in error.message


@FUZZ
@given(data=st.binary(max_size=4096))
@example(data=b"GGUF")
@example(data=b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
def test_random_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "random.gguf"
    path.write_bytes(data)
    _parses_or_refuses(path)


@FUZZ
@given(
    version=st.sampled_from([2, 3]),
    counts=st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
    | st.tuples(st.integers(0, 8), st.integers(0, 8)),
    body=st.binary(max_size=4096),
)
def test_random_bodies_after_a_valid_preamble(
    tmp_path: Path, version: int, counts: tuple[int, int], body: bytes
) -> None:
    path = tmp_path / "random.gguf"
    path.write_bytes(gf.header(counts[0], counts[1], version=version) + body)
    _parses_or_refuses(path)


MUTATED_SPAN = 64 * 1024


@FUZZ
@given(
    edits=st.lists(
        st.tuples(st.integers(0, MUTATED_SPAN - 1), st.integers(0, 255)), min_size=1, max_size=8
    ),
    region=st.sampled_from(["metadata", "tensor table"]),
    keep_rest=st.booleans(),
)
@example(edits=[(16, 0xFF)], region="metadata", keep_rest=True)  # the KV count's low byte
@example(edits=[(8, 0x00)], region="metadata", keep_rest=True)  # the tensor count's low byte
def test_mutated_real_header(
    tmp_path: Path,
    real_header: bytes,
    model_path: Path,
    edits: list[tuple[int, int]],
    region: str,
    keep_rest: bool,
) -> None:
    """Bytes of the real header changed (in its first 64 KiB, or in the 64 KiB from the
    tensor table's start); the file keeps the rest of the header and its real size (a sparse
    tail) so the tensor-data checks see a full-size file, or is cut after the mutated span."""
    start = 0 if region == "metadata" else real_header.rindex(b"token_embd.weight") - 8
    data = bytearray(real_header)
    for position, value in edits:
        if start + position < len(data):
            data[start + position] = value
    path = tmp_path / "mutated.gguf"
    with path.open("wb") as out:
        if keep_rest:
            out.write(data)
            out.truncate(model_path.stat().st_size)
        else:
            out.write(data[: start + MUTATED_SPAN])
    _parses_or_refuses(path)
