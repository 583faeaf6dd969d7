"""A bounded, defensive reader for the header of a GGUF model file.

Why not ``llama_cpp`` or the ``gguf`` package: showing and checking a model
must be fast and must not need the engine, and a model file is untrusted input
(downloaded, possibly truncated, possibly hostile). This reader reads only the
header (metadata and tensor table) through a buffered file object, checks
every count and length against fixed bounds *and* against the bytes the file
can still hold before allocating anything, and turns every problem into a
``GGUFError`` that names the file.

This module is the parser and the entry points (``read_gguf``, ``read_gguf_stream``,
``check_model_file``); what it returns (``GGUFFile``, ``TensorInfo``, ``GGUFError``)
is in :mod:`llmcli.store.gguf_header`, the bounded byte reads and their limits in
:mod:`llmcli.store.gguf_bytes`.

Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path
from typing import IO, Any

from llmcli.errors import ModelNotFound
from llmcli.store.gguf_bytes import (
    DEFAULT_ALIGNMENT,
    DEFAULT_MAX_METADATA_BYTES,
    KV_MIN_BYTES,
    MAGIC,
    MAX_ALIGNMENT,
    MAX_ARRAY_DEPTH,
    MAX_ARRAY_LEN,
    MAX_DIMS,
    MAX_ELEMENTS,
    MAX_KEY_BYTES,
    MAX_KV,
    MAX_TENSOR_NAME_BYTES,
    MAX_TENSORS,
    SCALAR_FORMATS,
    STRING_MIN_BYTES,
    SUPPORTED_VERSIONS,
    T_ARRAY,
    T_BOOL,
    T_FLOAT32,
    T_STRING,
    TENSOR_INFO_MIN_BYTES,
    HeaderReader,
)
from llmcli.store.gguf_header import (
    CORRUPT_HINT,
    GGML_TYPES,
    TRUNCATED_HINT,
    GGUFError,
    GGUFFile,
    TensorInfo,
)


def read_gguf(
    path: str | os.PathLike[str], *, max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES
) -> GGUFFile:
    """Read and validate the header of the GGUF file at ``path`` (tensor data is never read)."""
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb", buffering=0) as raw:
            info = os.fstat(raw.fileno())
            if stat.S_ISDIR(info.st_mode):
                raise IsADirectoryError(path)
            if not stat.S_ISREG(info.st_mode):
                raise GGUFError(
                    f"{path} is not a regular file", hint="pass a .gguf model file", path=path
                )
            reader = HeaderReader(raw, path, info.st_size, max_metadata_bytes)
            return _parse(reader)
    except GGUFError:
        raise
    except IsADirectoryError as exc:
        raise GGUFError(
            f"{path} is a directory, not a GGUF file",
            hint="pass the .gguf file inside it",
            path=path,
        ) from exc
    except FileNotFoundError as exc:
        raise GGUFError(f"{path} does not exist", hint="check the path", path=path) from exc
    except PermissionError as exc:
        raise GGUFError(
            f"{path} is not readable (permission denied)", hint="fix its permissions", path=path
        ) from exc
    except OSError as exc:
        raise GGUFError(
            f"{path}: cannot read: {exc.strerror or exc}", hint="check the disk", path=path
        ) from exc
    except (MemoryError, RecursionError) as exc:  # pragma: no cover - bounds should prevent these
        raise GGUFError(f"{path}: GGUF header too large to read", path=path) from exc


def read_gguf_stream(
    stream: IO[bytes],
    name: str,
    file_size: int,
    *,
    max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES,
) -> GGUFFile:
    """Parse a GGUF header from the start of a stream (a download) of a ``file_size`` file.

    Only the header is read from ``stream``; tensor extents are checked against
    ``file_size``, as for a file on disk.
    """
    reader = HeaderReader(stream, Path(name), file_size, max_metadata_bytes)
    try:
        return _parse(reader)
    except (MemoryError, RecursionError) as exc:  # pragma: no cover - bounds should prevent these
        raise GGUFError(f"{name}: GGUF header too large to read", path=name) from exc


def _parse(reader: HeaderReader) -> GGUFFile:
    path = reader.path
    if reader.file_size < 4:
        raise GGUFError(
            f"{path} is not a GGUF file (only {reader.file_size} bytes)",
            hint="pass a .gguf model file",
            path=path,
        )
    magic = reader.take(4)
    if magic != MAGIC:
        raise GGUFError(
            f"{path} is not a GGUF file ({_what_it_starts_with(magic)})",
            hint="pass a .gguf model file, the format llama.cpp reads",
            path=path,
        )
    version = _read_version(reader)
    n_tensors = reader.u64()
    n_kv = reader.u64()
    _check_count(reader, n_tensors, MAX_TENSORS, TENSOR_INFO_MIN_BYTES, "tensor count")
    _check_count(reader, n_kv, MAX_KV, KV_MIN_BYTES, "metadata key count")
    metadata = _read_metadata(reader, n_kv)
    alignment = _alignment(reader, metadata)
    tensors = _read_tensor_infos(reader, n_tensors, alignment)
    data_offset = -(-reader.offset // alignment) * alignment
    _check_tensor_data(reader, tensors, data_offset)
    return GGUFFile(
        path=path,
        version=version,
        metadata=metadata,
        tensors=tensors,
        data_offset=data_offset,
        file_size=reader.file_size,
        alignment=alignment,
        byte_order="little" if reader.order == "<" else "big",
    )


def _what_it_starts_with(magic: bytes) -> str:
    """Words for a file's first bytes (never a Python ``b'...'`` literal)."""
    try:
        text = magic.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    if text and all(ch.isprintable() or ch in "\t\r\n" for ch in text):
        return "it looks like text, not a model"
    if magic.startswith(b"PK"):
        return "it looks like a zip archive"
    return "it does not start with the GGUF signature"


def _read_version(reader: HeaderReader) -> int:
    version = reader.u32()
    swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
    if version not in SUPPORTED_VERSIONS and swapped in SUPPORTED_VERSIONS:
        reader.set_byte_order(">")  # a big-endian file (s390x builds write these)
        version = swapped
    if version in SUPPORTED_VERSIONS:
        return version
    if version == 1:
        hint = "version 1 files predate August 2023: download a current GGUF of the model"
    elif version == 0:
        hint = CORRUPT_HINT
    else:
        hint = "the file is newer than this llmcli understands: upgrade llmcli"
    raise GGUFError(
        f"{reader.path}: GGUF version {version} is not supported (llmcli reads versions 2 and 3)",
        hint=hint,
        path=reader.path,
    )


def _check_count(reader: HeaderReader, count: int, limit: int, min_bytes: int, what: str) -> None:
    """Refuse a count before allocating: too many in absolute terms, or for the bytes left."""
    if count > limit:
        raise reader.fail(f"{what} {count:,} is absurd (limit {limit:,})")
    if count * min_bytes > reader.remaining:
        raise reader.fail(
            f"{what} {count:,} cannot fit in the {reader.remaining:,} bytes left in the file",
            hint=TRUNCATED_HINT,
        )


def _read_metadata(reader: HeaderReader, n_kv: int) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = reader.string("a metadata key", MAX_KEY_BYTES)
        if key in metadata:
            raise reader.fail(f"duplicate metadata key {key!r}")
        value_type = reader.u32()
        metadata[key] = _read_value(reader, value_type, key, depth=0)
    return metadata


def _read_value(reader: HeaderReader, value_type: int, key: str, depth: int) -> Any:
    fmt = SCALAR_FORMATS.get(value_type)
    if fmt is not None:
        (value,) = reader.scalars(fmt, 1)
        if value_type == T_BOOL:
            return bool(value)
        return _shortest_float32(value) if value_type == T_FLOAT32 else value
    if value_type == T_STRING:
        return reader.string(f"metadata value {key!r}")
    if value_type == T_ARRAY:
        return _read_array(reader, key, depth)
    raise reader.fail(f"metadata {key!r} has unknown value type {value_type}")


def _shortest_float32(value: float) -> float:
    """The shortest decimal that is the same float32 (1e-05, not 9.999999747378752e-06)."""
    if value != value or value in (float("inf"), float("-inf")):
        return value
    packed = struct.pack("<f", value)
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack("<f", candidate) == packed:
            return candidate
    return value  # pragma: no cover - 9 significant digits always round-trip


def _read_array(reader: HeaderReader, key: str, depth: int) -> list[Any]:
    if depth >= MAX_ARRAY_DEPTH:
        raise reader.fail(f"metadata {key!r} nests arrays deeper than {MAX_ARRAY_DEPTH}")
    item_type = reader.u32()
    count = reader.u64()
    fmt = SCALAR_FORMATS.get(item_type)
    if fmt is not None:
        item_bytes = struct.calcsize("<" + fmt)
    elif item_type in (T_STRING, T_ARRAY):
        item_bytes = STRING_MIN_BYTES if item_type == T_STRING else 12
    else:
        raise reader.fail(f"metadata {key!r} is an array of unknown type {item_type}")
    if count > MAX_ARRAY_LEN:
        raise reader.fail(
            f"metadata {key!r} is an array of {count:,} items (limit {MAX_ARRAY_LEN:,})"
        )
    if count * item_bytes > reader.remaining:
        raise reader.fail(
            f"metadata {key!r} is an array of {count:,} items, more than the file can hold",
            hint=TRUNCATED_HINT,
        )
    if fmt is not None:
        values = reader.scalars(fmt, count)
        return [bool(v) for v in values] if item_type == T_BOOL else list(values)
    if item_type == T_STRING:
        return reader.strings(count, f"metadata {key!r}")
    return [_read_array(reader, key, depth + 1) for _ in range(count)]


def _alignment(reader: HeaderReader, metadata: dict[str, Any]) -> int:
    if "general.alignment" not in metadata:
        return DEFAULT_ALIGNMENT
    value = metadata["general.alignment"]
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value <= 0
        or value & (value - 1)
        or value > MAX_ALIGNMENT
    ):
        raise reader.fail(
            f"general.alignment {value!r} is not a power of two up to {MAX_ALIGNMENT}"
        )
    return value


def _read_tensor_infos(reader: HeaderReader, n_tensors: int, alignment: int) -> list[TensorInfo]:
    tensors: list[TensorInfo] = []
    seen: set[str] = set()
    for index in range(n_tensors):
        name = reader.string(f"the name of tensor #{index}", MAX_TENSOR_NAME_BYTES)
        if name in seen:
            raise reader.fail(f"duplicate tensor name {name!r}")
        seen.add(name)
        n_dims = reader.u32()
        if n_dims > MAX_DIMS:
            raise reader.fail(f"tensor {name!r} has {n_dims:,} dimensions (ggml allows {MAX_DIMS})")
        shape = tuple(int(d) for d in reader.scalars("Q", n_dims)) if n_dims else ()
        ggml_type = reader.u32()
        offset = reader.u64()
        tensors.append(_checked_tensor(reader, name, shape, ggml_type, offset, alignment))
    return tensors


def _checked_tensor(
    reader: HeaderReader,
    name: str,
    shape: tuple[int, ...],
    ggml_type: int,
    offset: int,
    alignment: int,
) -> TensorInfo:
    if any(dim <= 0 for dim in shape):
        raise reader.fail(f"tensor {name!r} has an empty or negative dimension {list(shape)}")
    elements = 1
    for dim in shape:
        elements *= dim
        if elements > MAX_ELEMENTS:
            raise reader.fail(f"tensor {name!r} has an absurd shape {list(shape)}")
    if ggml_type not in GGML_TYPES:
        raise reader.fail(
            f"tensor {name!r} has unknown ggml type {ggml_type}",
            hint="the file may need a newer llama.cpp: upgrade llmcli and llama-cpp-python",
        )
    type_name, block, _ = GGML_TYPES[ggml_type]
    row = shape[0] if shape else 1
    if row % block:
        raise reader.fail(
            f"tensor {name!r} row of {row} is not a multiple of the {type_name} block ({block})"
        )
    if offset % alignment:
        raise reader.fail(f"tensor {name!r} offset {offset:,} is not aligned to {alignment}")
    return TensorInfo(name=name, shape=shape, ggml_type=ggml_type, offset=offset)


def _check_tensor_data(reader: HeaderReader, tensors: list[TensorInfo], data_offset: int) -> None:
    for tensor in tensors:
        end = data_offset + tensor.offset + tensor.n_bytes
        if end > reader.file_size:
            raise reader.fail(
                f"tensor {tensor.name!r} data ends at byte {end:,} but the file has only "
                f"{reader.file_size:,} bytes (truncated?)",
                hint=TRUNCATED_HINT,
            )


def check_model_file(path: str | os.PathLike[str], *, allow_adapter: bool = False) -> GGUFFile:
    """Read ``path`` as a model to run: clear errors for a missing file, a directory, an adapter.

    ``allow_adapter`` accepts a LoRA adapter too (the store keeps pulled adapters).
    """
    path = Path(path)
    if not path.exists():
        raise ModelNotFound(
            f"model file {path} does not exist", hint="check the path, or run 'llmcli models list'"
        )
    if path.is_dir():
        raise GGUFError(
            f"{path} is a directory, not a GGUF file",
            hint="pass the .gguf file inside it",
            path=path,
        )
    if not os.access(path, os.R_OK):
        raise GGUFError(
            f"{path} is not readable (permission denied)", hint="fix its permissions", path=path
        )
    gguf = read_gguf(path)
    if gguf.is_lora_adapter and allow_adapter:
        return gguf
    if gguf.is_lora_adapter:
        raise GGUFError(
            f"{path} is a LoRA adapter, not a model",
            hint="pass a base model, and this file as its LoRA adapter",
            path=path,
        )
    if not gguf.tensors:
        raise GGUFError(
            f"{path} has no tensors (a vocabulary-only file?), so it cannot run",
            hint="pass a complete model file",
            path=path,
        )
    trained = gguf.context_length
    if trained is not None and not 0 <= trained < 2**31:
        # llama.cpp keeps it as a signed 32-bit size in places: 2**32-1 reads as -1.
        raise GGUFError(
            f"{path} declares a context length of {trained} tokens, which llama.cpp cannot use",
            hint="the file's metadata is damaged: download it again",
            path=path,
        )
    return gguf
