"""Read a Hub model's GGUF header without downloading the model (for ``pull --list``).

The memory estimate needs the architecture (layers, KV heads, vocabulary), which only
the header has. Every quant of a repo shares it, so one header is read, from the
smallest model: a GET with ``Range: bytes=0-…`` whose body is parsed as it arrives and
closed as soon as the header ends (a few hundred KB to a few MB; a large vocabulary is
most of it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, cast

from llmcli.store.gguf import read_gguf_stream
from llmcli.store.gguf_header import GGUFFile
from llmcli.store.hub import RemoteModel, RepoListing, file_source
from llmcli.store.refs import HubRef

HEADER_RANGE = 16 * 1024 * 1024
"""Bytes asked for: more than any header seen (Gemma's 262k-token vocabulary is ~6 MB)."""


class _ChunkReader:
    """``read(n)`` over an iterator of byte chunks (the HTTP body)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._buf += chunk
        if n < 0:
            n = len(self._buf)
        data, self._buf = self._buf[:n], self._buf[n:]
        return data


def header_model(listing: RepoListing) -> RemoteModel | None:
    """The smallest complete single-file model (all quants share the architecture)."""
    models = [m for m in listing.models if m.complete and not m.is_projector]
    return min(models, key=lambda m: (m.parts_expected > 1, m.size)) if models else None


def fetch_header(listing: RepoListing, model: RemoteModel) -> GGUFFile:
    """The GGUF header of ``model``'s first file, streamed from the Hub."""
    import httpx2
    from huggingface_hub.utils import get_session, hf_raise_for_status

    from llmcli.store.hub import hub_errors

    first = model.first
    source = file_source(listing.repo_id, listing.commit, first)
    headers = dict(source.headers)
    headers["Range"] = f"bytes=0-{min(HEADER_RANGE, first.size) - 1}"
    ref = HubRef(listing.repo_id, filename=first.path, revision=listing.commit)
    timeout = httpx2.Timeout(30.0, connect=10.0)
    request = get_session().stream(
        "GET", source.url, headers=headers, timeout=timeout, follow_redirects=True
    )
    with hub_errors(ref), request as response:
        if response.status_code >= 400:
            response.read()
            hf_raise_for_status(response)
        stream = cast(IO[bytes], _ChunkReader(response.iter_bytes()))
        return read_gguf_stream(stream, first.name, first.size, max_metadata_bytes=HEADER_RANGE)
