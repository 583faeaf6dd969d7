"""A bounded, defensive reader for the header of a GGUF model file.

Why not ``llama_cpp`` or the ``gguf`` package: showing and checking a model
must be fast and must not need the engine, and a model file is untrusted input
(downloaded, possibly truncated, possibly hostile). This reader reads only the
header (metadata and tensor table) through a buffered file object, checks
every count and length against fixed bounds *and* against the bytes the file
can still hold before allocating anything, and turns every problem into a
``GGUFError`` that names the file.

Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from llmcli.errors import DataError, ModelNotFound

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32

# Bounds that no real model comes near but that stop a hostile header from
# making us allocate or loop without end. Each count is also checked against
# the bytes left in the file (every item takes a minimum number of bytes).
DEFAULT_MAX_METADATA_BYTES = 64 * 1024 * 1024  # Gemma's 262k-token vocab is ~6 MB
MAX_TENSORS = 1 << 20
MAX_KV = 1 << 16
MAX_KEY_BYTES = 65_535  # the spec's limit for keys
MAX_STRING_BYTES = 16 * 1024 * 1024  # chat templates are a few KB, licenses tens
MAX_ARRAY_LEN = 1 << 22  # a 262,144-token vocabulary is normal; billions is not
MAX_ARRAY_DEPTH = 4
MAX_TENSOR_NAME_BYTES = 1024  # ggml itself stops at 64
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_ELEMENTS = 1 << 62  # ggml counts elements in int64
MAX_ALIGNMENT = 1 << 20

_READ_CHUNK = 1 << 20
_TENSOR_INFO_MIN_BYTES = 8 + 4 + 4 + 8  # name length, n_dims, type, offset
_KV_MIN_BYTES = 8 + 4 + 1  # key length, value type, smallest value

# GGUF value types (gguf.md "gguf_metadata_value_type").
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32 = range(7)
T_BOOL, T_STRING, T_ARRAY, T_UINT64, T_INT64, T_FLOAT64 = range(7, 13)
_SCALAR_FORMATS = {
    T_UINT8: "B",
    T_INT8: "b",
    T_UINT16: "H",
    T_INT16: "h",
    T_UINT32: "I",
    T_INT32: "i",
    T_FLOAT32: "f",
    T_BOOL: "B",
    T_UINT64: "Q",
    T_INT64: "q",
    T_FLOAT64: "d",
}
_STRING_MIN_BYTES = 8

# ggml type id -> (name, elements per block, bytes per block), from ggml.h / gguf-py.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36),
    41: ("Q1_0", 128, 18),
}

# general.file_type (llama.h ``llama_ftype``) -> the name people use for the quantization.
FILE_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    4: "Q4_1_SOME_F16",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
    39: "NVFP4",
    40: "Q1_0",
}

CORRUPT_HINT = "the file is damaged or not a llama.cpp model: download it again"
TRUNCATED_HINT = "the download was probably interrupted: download the model again"


class GGUFError(DataError):
    """A file that is not a usable GGUF model; the message names the file and the problem."""

    def __init__(
        self, message: str, hint: str | None = CORRUPT_HINT, *, path: Path | str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.path = path


@dataclass(frozen=True)
class TensorInfo:
    """One row of the tensor table. ``shape`` is in ggml order (fastest-varying first)."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int  # relative to GGUFFile.data_offset

    @property
    def type_name(self) -> str:
        return GGML_TYPES[self.ggml_type][0] if self.ggml_type in GGML_TYPES else "?"

    @property
    def n_elements(self) -> int:
        n = 1
        for dim in self.shape:
            n *= dim
        return n

    @property
    def n_bytes(self) -> int:
        _, block, size = GGML_TYPES[self.ggml_type]
        return self.n_elements // block * size


@dataclass
class GGUFFile:
    """Everything in a GGUF header; tensor data is never read."""

    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo]
    data_offset: int
    file_size: int
    alignment: int
    byte_order: str = field(default="little")

    @property
    def architecture(self) -> str | None:
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None

    @property
    def name(self) -> str:
        value = self.metadata.get("general.name")
        return value if isinstance(value, str) and value else self.path.stem

    def arch_value(self, key: str) -> Any:
        """``{architecture}.{key}``, e.g. ``arch_value("context_length")``; None when absent."""
        if self.architecture is None:
            return None
        return self.metadata.get(f"{self.architecture}.{key}")

    @property
    def context_length(self) -> int | None:
        return _as_int(self.arch_value("context_length"))

    @property
    def block_count(self) -> int | None:
        return _as_int(self.arch_value("block_count"))

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) else None

    @property
    def template_sha256(self) -> str | None:
        template = self.chat_template
        if template is None:
            return None
        return hashlib.sha256(template.encode("utf-8", "surrogatepass")).hexdigest()

    @property
    def file_type_name(self) -> str | None:
        """The quantization: ``general.file_type``, else the type holding most weights."""
        file_type = self.metadata.get("general.file_type")
        if isinstance(file_type, int) and file_type in FILE_TYPES:
            return FILE_TYPES[file_type]
        return self.dominant_type_name

    @property
    def dominant_type_name(self) -> str | None:
        weights: Counter[str] = Counter()
        for tensor in self.tensors:
            weights[tensor.type_name] += tensor.n_elements
        return weights.most_common(1)[0][0] if weights else None

    @property
    def parameter_count(self) -> int:
        return sum(tensor.n_elements for tensor in self.tensors)

    @property
    def is_lora_adapter(self) -> bool:
        return self.metadata.get("general.type") == "adapter"


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return None


class _HeaderReader:
    """Sequential reads over a buffered file, refusing to run past the file or the byte budget."""

    def __init__(self, stream: IO[bytes], path: Path, file_size: int, limit: int) -> None:
        self._stream = stream
        self.path = path
        self.file_size = file_size
        self._limit = limit
        self._buf = b""
        self._pos = 0  # position inside _buf
        self._base = 0  # file offset of _buf[0]
        self.order = "<"
        self._u32 = struct.Struct("<I")
        self._u64 = struct.Struct("<Q")

    @property
    def offset(self) -> int:
        return self._base + self._pos

    @property
    def remaining(self) -> int:
        return self.file_size - self.offset

    def set_byte_order(self, order: str) -> None:
        self.order = order
        self._u32 = struct.Struct(order + "I")
        self._u64 = struct.Struct(order + "Q")

    def fail(self, problem: str, hint: str = CORRUPT_HINT) -> GGUFError:
        return GGUFError(f"{self.path}: {problem}", hint=hint, path=self.path)

    def _fill(self, n: int) -> None:
        """Make sure ``n`` bytes are buffered at the current position."""
        have = len(self._buf) - self._pos
        if have >= n:
            return
        end = self.offset + n
        if end > self.file_size:
            raise self.fail(
                f"truncated GGUF file: the header needs byte {end:,} "
                f"but the file has only {self.file_size:,} bytes",
                hint=TRUNCATED_HINT,
            )
        if end > self._limit:
            raise self.fail(
                f"GGUF header is larger than {self._limit:,} bytes (refusing to read more)"
            )
        # Read ahead a chunk, but never past the byte budget.
        want = max(n - have, min(_READ_CHUNK, self._limit - self.offset - have))
        chunks = [self._buf[self._pos :]]
        got = have
        try:
            while got < n:
                chunk = self._stream.read(want - (got - have))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except OSError as exc:
            raise self.fail(f"cannot read: {exc.strerror or exc}", hint="check the disk") from exc
        self._base += self._pos
        self._buf = b"".join(chunks)
        self._pos = 0
        if len(self._buf) < n:
            raise self.fail(
                f"truncated GGUF file: ended at byte {self.offset + len(self._buf):,}",
                hint=TRUNCATED_HINT,
            )

    def take(self, n: int) -> bytes:
        self._fill(n)
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        return data

    def u32(self) -> int:
        self._fill(4)
        (value,) = self._u32.unpack_from(self._buf, self._pos)
        self._pos += 4
        return int(value)

    def u64(self) -> int:
        self._fill(8)
        (value,) = self._u64.unpack_from(self._buf, self._pos)
        self._pos += 8
        return int(value)

    def string(self, what: str, max_bytes: int = MAX_STRING_BYTES) -> str:
        length = self.u64()
        if length > max_bytes:
            raise self.fail(f"{what} is {length:,} bytes long (limit {max_bytes:,})")
        return self.take(length).decode("utf-8", "replace")

    def scalars(self, fmt: str, count: int) -> tuple[Any, ...]:
        """``count`` fixed-size values of struct format ``fmt`` in one unpack."""
        st = struct.Struct(f"{self.order}{count}{fmt}")
        self._fill(st.size)
        values = st.unpack_from(self._buf, self._pos)
        self._pos += st.size
        return values

    def strings(self, count: int, what: str) -> list[str]:
        """``count`` strings: the hot loop of a tokenizer vocabulary, so it works on the buffer."""
        out: list[str] = []
        append = out.append
        unpack_u64 = self._u64.unpack_from
        buf, pos = self._buf, self._pos
        end = len(buf)
        for _ in range(count):
            if end - pos < 8:
                buf, pos, end = self._refill(pos, 8)
            (length,) = unpack_u64(buf, pos)
            stop = pos + 8 + length
            if stop > end or length > MAX_STRING_BYTES:
                if length > MAX_STRING_BYTES:
                    self._pos = pos
                    raise self.fail(f"a string in {what} is {length:,} bytes long")
                buf, pos, end = self._refill(pos, 8 + length)
                stop = pos + 8 + length
            append(buf[pos + 8 : stop].decode("utf-8", "replace"))
            pos = stop
        self._pos = pos
        return out

    def _refill(self, pos: int, n: int) -> tuple[bytes, int, int]:
        self._pos = pos
        self._fill(n)
        return self._buf, self._pos, len(self._buf)


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
            reader = _HeaderReader(raw, path, info.st_size, max_metadata_bytes)
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
    reader = _HeaderReader(stream, Path(name), file_size, max_metadata_bytes)
    try:
        return _parse(reader)
    except (MemoryError, RecursionError) as exc:  # pragma: no cover - bounds should prevent these
        raise GGUFError(f"{name}: GGUF header too large to read", path=name) from exc


def _parse(reader: _HeaderReader) -> GGUFFile:
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
    _check_count(reader, n_tensors, MAX_TENSORS, _TENSOR_INFO_MIN_BYTES, "tensor count")
    _check_count(reader, n_kv, MAX_KV, _KV_MIN_BYTES, "metadata key count")
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


def _read_version(reader: _HeaderReader) -> int:
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


def _check_count(reader: _HeaderReader, count: int, limit: int, min_bytes: int, what: str) -> None:
    """Refuse a count before allocating: too many in absolute terms, or for the bytes left."""
    if count > limit:
        raise reader.fail(f"{what} {count:,} is absurd (limit {limit:,})")
    if count * min_bytes > reader.remaining:
        raise reader.fail(
            f"{what} {count:,} cannot fit in the {reader.remaining:,} bytes left in the file",
            hint=TRUNCATED_HINT,
        )


def _read_metadata(reader: _HeaderReader, n_kv: int) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = reader.string("a metadata key", MAX_KEY_BYTES)
        if key in metadata:
            raise reader.fail(f"duplicate metadata key {key!r}")
        value_type = reader.u32()
        metadata[key] = _read_value(reader, value_type, key, depth=0)
    return metadata


def _read_value(reader: _HeaderReader, value_type: int, key: str, depth: int) -> Any:
    fmt = _SCALAR_FORMATS.get(value_type)
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


def _read_array(reader: _HeaderReader, key: str, depth: int) -> list[Any]:
    if depth >= MAX_ARRAY_DEPTH:
        raise reader.fail(f"metadata {key!r} nests arrays deeper than {MAX_ARRAY_DEPTH}")
    item_type = reader.u32()
    count = reader.u64()
    fmt = _SCALAR_FORMATS.get(item_type)
    if fmt is not None:
        item_bytes = struct.calcsize("<" + fmt)
    elif item_type in (T_STRING, T_ARRAY):
        item_bytes = _STRING_MIN_BYTES if item_type == T_STRING else 12
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


def _alignment(reader: _HeaderReader, metadata: dict[str, Any]) -> int:
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


def _read_tensor_infos(reader: _HeaderReader, n_tensors: int, alignment: int) -> list[TensorInfo]:
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
    reader: _HeaderReader,
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


def _check_tensor_data(reader: _HeaderReader, tensors: list[TensorInfo], data_offset: int) -> None:
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
