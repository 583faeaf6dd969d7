"""A small Hugging Face Hub on 127.0.0.1 that the real huggingface_hub client talks to.

It speaks the parts of the Hub API that ``llmcli pull`` uses through huggingface_hub:

- ``GET /api/models/OWNER/REPO[/revision/REV]?blobs=true`` — model info with each file's
  size, git blob id and LFS sha256 (what ``HfApi.model_info(files_metadata=True)`` reads);
- ``HEAD|GET /OWNER/REPO/resolve/REV/PATH`` — for LFS files a 302 to a separate "CDN"
  server (another port, so another origin: huggingface_hub stops at the 302 and reads
  ``X-Repo-Commit``/``X-Linked-Etag``/``X-Linked-Size`` there, and httpx drops the token
  when following it, as with the real CDN); plain git files are served directly;
- the CDN: ``HEAD|GET /cdn/SHA256`` with ``Range: bytes=N-`` (206 + ``Content-Range``);
- errors with the Hub's ``X-Error-Code`` headers: RepoNotFound (404, or 401 for a private
  repo without a token), GatedRepo (401 without a token, 403 with a token not allowed),
  RevisionNotFound, EntryNotFound.

Faults, per file, for the tests: ``cut_at`` (close the connection at that byte, every
time, until cleared), ``pause_at`` (stop at that byte until :meth:`FakeHub.release`),
``corrupt`` (flip one byte, same size). The CDN counts the bytes it serves per file.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

SEND_CHUNK = 64 * 1024
PAUSE_LIMIT_S = 60.0


@dataclass
class HubFile:
    """A file in a repo: bytes in memory, or a path on disk (the 98 MB SmolLM2)."""

    data: bytes | None = None
    source: Path | None = None
    lfs: bool = True
    size: int = 0
    sha256: str = ""
    git_sha1: str = ""

    def __post_init__(self) -> None:
        hasher, blob = hashlib.sha256(), hashlib.sha1()
        self.size = len(self.data) if self.data is not None else self.source.stat().st_size  # type: ignore[union-attr]
        blob.update(b"blob %d\0" % self.size)
        for chunk in self.chunks(0, self.size):
            hasher.update(chunk)
            blob.update(chunk)
        self.sha256, self.git_sha1 = hasher.hexdigest(), blob.hexdigest()

    def chunks(self, start: int, end: int) -> Any:
        if self.data is not None:
            for pos in range(start, end, SEND_CHUNK):
                yield self.data[pos : min(pos + SEND_CHUNK, end)]
            return
        assert self.source is not None
        with open(self.source, "rb") as src:
            src.seek(start)
            pos = start
            while pos < end:
                chunk = src.read(min(SEND_CHUNK, end - pos))
                if not chunk:
                    return
                yield chunk
                pos += len(chunk)


@dataclass
class Fault:
    cut_at: int | None = None
    pause_at: int | None = None
    corrupt: bool = False
    ignore_range: bool = False  # answer 200 with the whole file, like some proxies


@dataclass
class Transfer:
    """One GET of a file's bytes: the Range asked and the bytes sent for it."""

    sha256: str
    range: str | None
    served: int = 0


@dataclass
class Repo:
    repo_id: str
    revisions: dict[str, str] = field(default_factory=dict)  # name -> commit
    snapshots: dict[str, dict[str, HubFile]] = field(default_factory=dict)  # commit -> files
    gated: bool = False
    private: bool = False


class FakeHub:
    """Start with ``with FakeHub() as hub:``; ``hub.url`` goes into ``HF_ENDPOINT``."""

    def __init__(self, tokens: tuple[str, ...] = ("hf_good_token",)) -> None:
        self.repos: dict[str, Repo] = {}
        self.tokens = set(tokens)
        self.faults: dict[str, Fault] = {}  # by sha256
        self.bytes_served: dict[str, int] = defaultdict(int)  # by sha256
        self.transfers: list[Transfer] = []
        self.requests: list[tuple[str, str]] = []
        self.paused = threading.Event()
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._hub = _Server(self, cdn=False)
        self._cdn = _Server(self, cdn=True)
        self._counter = 0
        self.tamper: dict[str, Any] = {}  # repo_id -> callable(body) -> body: a hostile mirror

    # -- setup -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._hub.url

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes | Path | HubFile],
        *,
        gated: bool = False,
        private: bool = False,
    ) -> str:
        """Create ``repo_id`` with ``files`` on ``main``; returns the commit."""
        repo = Repo(repo_id, gated=gated, private=private)
        self.repos[repo_id] = repo
        return self.add_revision(repo_id, "main", files)

    def add_revision(
        self, repo_id: str, name: str, files: Mapping[str, bytes | Path | HubFile]
    ) -> str:
        """Another branch or tag with its own files (a new commit)."""
        self._counter += 1
        commit = hashlib.sha1(f"{repo_id}@{name}#{self._counter}".encode()).hexdigest()
        snapshot = {path: self._as_file(value) for path, value in files.items()}
        repo = self.repos[repo_id]
        repo.snapshots[commit] = snapshot
        repo.revisions[name] = commit
        return commit

    @staticmethod
    def _as_file(value: bytes | Path | HubFile) -> HubFile:
        if isinstance(value, HubFile):
            return value
        if isinstance(value, Path):
            return HubFile(source=value)
        return HubFile(data=value)

    def file(self, repo_id: str, path: str, revision: str = "main") -> HubFile:
        repo = self.repos[repo_id]
        return repo.snapshots[repo.revisions.get(revision, revision)][path]

    def fault(self, repo_id: str, path: str, **kwargs: Any) -> Fault:
        fault = Fault(**kwargs)
        self.faults[self.file(repo_id, path).sha256] = fault
        self._release.clear()
        self.paused.clear()
        return fault

    def clear_faults(self) -> None:
        self.faults.clear()
        self.release()

    def release(self) -> None:
        """Let a paused transfer go on."""
        self._release.set()

    def served(self, repo_id: str, path: str) -> int:
        return self.bytes_served[self.file(repo_id, path).sha256]

    def transfers_of(self, repo_id: str, path: str) -> list[Transfer]:
        sha = self.file(repo_id, path).sha256
        return [t for t in self.transfers if t.sha256 == sha]

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> FakeHub:
        self._hub.start()
        self._cdn.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._hub.stop()
        self._cdn.stop()

    def cdn_url(self, sha256: str) -> str:
        return f"{self._cdn.url}/cdn/{sha256}"

    def find_blob(self, sha256: str) -> HubFile | None:
        for repo in self.repos.values():
            for snapshot in repo.snapshots.values():
                for file in snapshot.values():
                    if file.sha256 == sha256:
                        return file
        return None

    def wait_released(self) -> None:
        self.paused.set()
        self._release.wait(PAUSE_LIMIT_S)

    def start_transfer(self, sha256: str, range_header: str | None) -> Transfer:
        transfer = Transfer(sha256, range_header)
        with self._lock:
            self.transfers.append(transfer)
        return transfer

    def count(self, transfer: Transfer, n: int) -> None:
        with self._lock:
            self.bytes_served[transfer.sha256] += n
            transfer.served += n


class _Server:
    def __init__(self, hub: FakeHub, *, cdn: bool) -> None:
        handler = type("Handler", (_Handler,), {"hub": hub, "cdn": cdn})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


_API_RE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>.+))?$")
_RESOLVE_RE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_CDN_RE = re.compile(r"^/cdn/(?P<sha>[0-9a-f]{64})$")
_RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    cdn: bool
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass

    def do_HEAD(self) -> None:  # noqa: N802 - the stdlib's name
        self._route(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._route(head=False)

    # -- routing -----------------------------------------------------------------------

    def _route(self, *, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        self.hub.requests.append((self.command, path))
        try:
            if self.cdn:
                match = _CDN_RE.match(path)
                if match:
                    return self._serve_blob(match["sha"], head=head)
            else:
                match = _API_RE.match(path)
                if match and not head:
                    return self._model_info(match["repo"], match["rev"])
                match = _RESOLVE_RE.match(path)
                if match:
                    return self._resolve(match["repo"], match["rev"], match["path"], head=head)
            self._error(404, "NotFound", "no such endpoint")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _authorized(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None
        return token

    def _repo(self, repo_id: str, revision: str | None) -> tuple[Repo, str] | None:
        """The repo and commit, or ``None`` after sending the Hub's error."""
        repo = self.hub.repos.get(repo_id)
        token = self._authorized()
        if repo is None or (repo.private and token not in self.hub.tokens):
            status = 401 if repo is not None and token is None else 404
            self._error(status, "RepoNotFound", "Repository not found")
            return None
        rev = revision or "main"
        commit = repo.revisions.get(rev, rev if rev in repo.snapshots else None)
        if commit is None:
            self._error(404, "RevisionNotFound", "Invalid rev id: " + rev)
            return None
        return repo, commit

    # -- endpoints ---------------------------------------------------------------------

    def _model_info(self, repo_id: str, revision: str | None) -> None:
        found = self._repo(repo_id, revision)
        if found is None:
            return
        repo, commit = found
        siblings = []
        for path, file in sorted(repo.snapshots[commit].items()):
            entry: dict[str, Any] = {"rfilename": path, "size": file.size, "blobId": file.git_sha1}
            if file.lfs:
                entry["size"] = file.size
                entry["lfs"] = {"size": file.size, "sha256": file.sha256, "pointerSize": 134}
            siblings.append(entry)
        body = {
            "_id": "0" * 24,
            "id": repo_id,
            "modelId": repo_id,
            "author": repo_id.split("/")[0],
            "sha": commit,
            "private": repo.private,
            "gated": "manual" if repo.gated else False,
            "disabled": False,
            "tags": ["gguf"],
            "siblings": siblings,
        }
        tamper = self.hub.tamper.get(repo_id)
        self._json(200, tamper(body) if tamper else body)

    def _resolve(self, repo_id: str, revision: str, path: str, *, head: bool) -> None:
        found = self._repo(repo_id, revision)
        if found is None:
            return
        repo, commit = found
        if repo.gated:
            token = self._authorized()
            if token not in self.hub.tokens:
                status = 401 if token is None else 403
                message = f"Access to model {repo_id} is restricted."
                self._error(status, "GatedRepo", message, commit=commit)
                return
        file = repo.snapshots[commit].get(path)
        if file is None:
            self._error(404, "EntryNotFound", "Entry not found", commit=commit)
            return
        if not file.lfs:
            headers = {"X-Repo-Commit": commit, "ETag": f'"{file.git_sha1}"'}
            self._send_bytes(file, file.git_sha1, head=head, extra=headers)
            return
        self.send_response(302)
        self.send_header("Location", self.hub.cdn_url(file.sha256))
        self.send_header("X-Repo-Commit", commit)
        self.send_header("X-Linked-Etag", f'"{file.sha256}"')
        self.send_header("X-Linked-Size", str(file.size))
        self.send_header("ETag", f'"{file.git_sha1}"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _serve_blob(self, sha: str, *, head: bool) -> None:
        file = self.hub.find_blob(sha)
        if file is None:
            self._error(404, "EntryNotFound", "no such blob")
            return
        self._send_bytes(file, sha, head=head, extra={"ETag": f'"{sha}"'})

    def _send_bytes(self, file: HubFile, key: str, *, head: bool, extra: dict[str, str]) -> None:
        start, end = 0, file.size
        range_header = self.headers.get("Range")
        status = 200
        if range_header and not self.hub.faults.get(key, Fault()).ignore_range:
            match = _RANGE_RE.match(range_header.strip())
            if not match or int(match[1]) >= file.size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{file.size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = int(match[1])
            end = min(int(match[2]) + 1, file.size) if match[2] else file.size
            status = 206
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{file.size}")
        self.end_headers()
        if head:
            return
        transfer = self.hub.start_transfer(key, range_header)
        self._stream(file, transfer, start, end)

    def _stream(self, file: HubFile, transfer: Transfer, start: int, end: int) -> None:
        key = transfer.sha256
        fault = self.hub.faults.get(key, Fault())
        stop = end
        if fault.cut_at is not None:
            stop = min(stop, max(fault.cut_at, start))
        pos = start
        for chunk in file.chunks(start, stop):
            if fault.pause_at is not None and pos <= fault.pause_at < pos + len(chunk):
                head_part = chunk[: fault.pause_at - pos]
                self._write(transfer, head_part, pos, file, fault)
                pos += len(head_part)
                chunk = chunk[len(head_part) :]
                self.hub.wait_released()
            self._write(transfer, chunk, pos, file, fault)
            pos += len(chunk)
        if stop < end:
            self.close_connection = True  # the client sees a body cut short

    def _write(
        self, transfer: Transfer, chunk: bytes, pos: int, file: HubFile, fault: Fault
    ) -> None:
        if not chunk:
            return
        flip = file.size // 2
        if fault.corrupt and pos <= flip < pos + len(chunk):
            data = bytearray(chunk)
            data[flip - pos] ^= 0xFF
            chunk = bytes(data)
        self.wfile.write(chunk)
        self.wfile.flush()
        self.hub.count(transfer, len(chunk))

    # -- helpers -----------------------------------------------------------------------

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
        data = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)) if self.command != "HEAD" else "0")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


# ---- content and process helpers for the pull tests ------------------------------------


def cli_command(*args: str) -> list[str]:
    """argv for ``llmcli ARGS`` in a fresh interpreter."""
    import sys

    return [sys.executable, "-m", "llmcli", *args]


@contextmanager
def online_hub(monkeypatch: Any, tmp_path: Path) -> Iterator[FakeHub]:
    """A running fake Hub with HF_ENDPOINT pointing at it: online, and no token or saved
    login from the machine (the autouse fixture sets HF_HUB_OFFLINE=1 for every test)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    with FakeHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def run_llmcli(
    *args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 120
) -> Any:
    """``llmcli ARGS`` in a subprocess with pipes (like ``conftest.run_cli``), text output."""
    import os
    import subprocess

    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        cli_command(*args),
        input=input,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def tiny_gguf(tmp: Path, name: str, *, hidden: int = 128) -> bytes:
    """A small valid llama GGUF (~1.2 MB at hidden=128); ``name`` makes its bytes unique."""
    from tests.gguf_factory import write_tiny_llama

    return write_tiny_llama(
        tmp / f"{name}.gguf", hidden=hidden, ffn=2 * hidden, name=name
    ).read_bytes()


def split_gguf(stem: str, parts: int, *, hidden: int = 128) -> dict[str, bytes]:
    """A tiny llama model split like llama.cpp's gguf-split: ``STEM-0000N-of-0000M.gguf``.

    Shard 1 carries the model metadata; every shard carries ``split.*`` keys and its share
    of the tensors, and is a valid GGUF file on its own.
    """
    from tests import gguf_factory as g

    specs = g.tiny_llama_tensors(
        n_blocks=2,
        hidden=hidden,
        ffn=2 * hidden,
        kv_dim=hidden // 2,
        vocab=32,
        tied=True,
        ggml_type=g.F32,
    )
    model_kvs = [
        g.kv("general.architecture", g.STRING, "llama"),
        g.kv("general.name", g.STRING, stem),
        g.kv("llama.block_count", g.UINT32, 2),
        g.kv("llama.context_length", g.UINT32, 4096),
        g.kv("llama.embedding_length", g.UINT32, hidden),
        g.kv("tokenizer.ggml.tokens", g.ARRAY, (g.STRING, [f"t{i}" for i in range(32)])),
    ]
    out: dict[str, bytes] = {}
    for index in range(parts):
        share = specs[index::parts]
        kvs = [
            *(model_kvs if index == 0 else []),
            g.kv("split.no", g.UINT16, index),
            g.kv("split.count", g.UINT16, parts),
            g.kv("split.tensors.count", g.INT32, len(specs)),
        ]
        out[f"{stem}-{index + 1:05d}-of-{parts:05d}.gguf"] = g.build_gguf(kvs, share)
    return out
