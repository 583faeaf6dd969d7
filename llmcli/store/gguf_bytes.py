"""Bounded sequential reads of a GGUF header's bytes, and the bounds themselves.

A model file is untrusted input (downloaded, possibly truncated, possibly hostile), so
every read goes through :class:`HeaderReader`, which refuses to run past the end of the
file or past a byte budget, and every count or length the header declares is checked
against the fixed bounds below before anything is allocated. Kept apart from the parser
(:mod:`llmcli.store.gguf`) so that the one place that touches raw bytes, and its hot
loop over a tokenizer vocabulary, can be read and tested on its own.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import IO, Any

from llmcli.store.gguf_header import CORRUPT_HINT, TRUNCATED_HINT, GGUFError

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

READ_CHUNK = 1 << 20
TENSOR_INFO_MIN_BYTES = 8 + 4 + 4 + 8  # name length, n_dims, type, offset
KV_MIN_BYTES = 8 + 4 + 1  # key length, value type, smallest value

# GGUF value types (gguf.md "gguf_metadata_value_type").
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32 = range(7)
T_BOOL, T_STRING, T_ARRAY, T_UINT64, T_INT64, T_FLOAT64 = range(7, 13)
SCALAR_FORMATS = {
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
STRING_MIN_BYTES = 8


class HeaderReader:
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
        want = max(n - have, min(READ_CHUNK, self._limit - self.offset - have))
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
