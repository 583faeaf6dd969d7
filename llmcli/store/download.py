"""Pull a model into the store: resumable transfer, sha256 check, GGUF check, then visible.

Why not ``hf_hub_download``: in huggingface_hub 2.x its partial file has a random name
and is deleted on failure, so an interrupted multi-GB pull restarts from zero in the next
process. Here each file's partial lives at ``.incomplete/SHA256.part`` (content-addressed,
so a partial is only ever resumed into the same bytes) and the next run continues it with
an HTTP Range request. huggingface_hub still provides URLs, auth headers, metadata and
its shared ``httpx2`` client (the HTTP client it depends on); we only move the bytes.

Order for every file: lock → transfer → verify sha256 → check the GGUF header → rename
into the model folder. The manifest is written last, so a model is visible only whole.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from llmcli.errors import DataError, LlmcliError, ServiceUnavailable, StorageError
from llmcli.store.catalog import (
    StoredModel,
    incomplete_dir,
    locks_dir,
    model_folder,
    store_root,
)
from llmcli.store.hub import (
    Choice,
    FileSource,
    RemoteFile,
    RemoteModel,
    RepoListing,
    file_source,
    hub_errors,
)
from llmcli.store.lock import exclusive_lock
from llmcli.store.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    ManifestFile,
    now_utc,
    read_manifest,
    write_manifest,
)
from llmcli.store.refs import HubRef
from llmcli.units import format_bytes

if TYPE_CHECKING:
    from llmcli.store.gguf_header import GGUFFile

CHUNK_BYTES = 1 << 20
RETRY_DELAYS_S = (0.5, 1.0, 2.0)  # between attempts that brought no new bytes
DEFAULT_WAIT_S = 300.0
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}


class PullReporter(Protocol):
    """What a pull tells its user; the CLI draws it (Rich bar in a terminal, lines in a pipe)."""

    def note(self, text: str) -> None: ...
    def start_file(self, name: str, total: int, done: int) -> None: ...
    def advance(self, n: int) -> None: ...
    def end_file(self, name: str) -> None: ...


@dataclass(frozen=True)
class PullResult:
    model: StoredModel
    downloaded_bytes: int  # 0 when the model was already in the store


def pull_model(
    listing: RepoListing,
    choice: Choice,
    ref: HubRef,
    reporter: PullReporter,
    *,
    wait_s: float = DEFAULT_WAIT_S,
) -> PullResult:
    """Bring ``choice.model`` into the store (or find it there, already verified)."""
    model = choice.model
    folder = model_folder(listing.repo_id, model.key, ref.revision)
    lock = locks_dir() / f"model-{hashlib.sha1(str(folder).encode()).hexdigest()[:20]}.lock"
    with exclusive_lock(lock, what=model.label, wait_s=wait_s, on_wait=reporter.note):
        existing = _current_manifest(folder, reporter)
        if existing is not None and _is_current(existing, model, folder):
            manifest = existing
            if existing.commit != listing.commit:
                manifest = _manifest(listing, model, ref, _existing_headers(folder, model))
                write_manifest(folder, manifest)
            return PullResult(StoredModel(folder, manifest), 0)
        check_free_space(model, folder, existing)
        folder.mkdir(parents=True, exist_ok=True)
        downloaded = 0
        headers: list[GGUFFile] = []
        for file in model.files:
            header, got = _fetch_into(
                listing, model, file, folder, existing, reporter, wait_s=wait_s
            )
            headers.append(header)
            downloaded += got
        manifest = _manifest(listing, model, ref, headers)
        write_manifest(folder, manifest)
        _remove_stale_files(folder, manifest)
    return PullResult(StoredModel(folder, manifest), downloaded)


def _current_manifest(folder: Path, reporter: PullReporter) -> Manifest | None:
    path = folder / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        return read_manifest(path)
    except ManifestError as exc:
        reporter.note(f"{exc.message}; pulling the model again")
        return None


def _is_current(manifest: Manifest, model: RemoteModel, folder: Path) -> bool:
    stored = {(f.name, f.size, f.sha256) for f in manifest.files}
    wanted = {(f.name, f.size, f.sha256) for f in model.files}
    return stored == wanted and all((folder / f.name).is_file() for f in model.files)


def _existing_headers(folder: Path, model: RemoteModel) -> list[GGUFFile]:
    from llmcli.store.gguf import read_gguf

    return [read_gguf(folder / f.name) for f in model.files]


# ---- disk space ------------------------------------------------------------------------


def check_free_space(model: RemoteModel, folder: Path, existing: Manifest | None) -> None:
    """Refuse to start a pull that cannot fit (partial downloads already count as done)."""
    needed = sum(_bytes_still_needed(f, folder, existing) for f in model.files)
    root = store_root()
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    if needed > free:
        raise StorageError(
            f"not enough disk space for {model.label}: it needs {format_bytes(needed)} more, "
            f"{format_bytes(free)} free in {root}",
            hint="free some space (llmcli models rm …) or point LLMCLI_HOME at a bigger disk",
        )


def _bytes_still_needed(file: RemoteFile, folder: Path, existing: Manifest | None) -> int:
    if _vouched(folder / file.name, file, existing):
        return 0
    partial = partial_path(file)
    have = partial.stat().st_size if partial.is_file() else 0
    return max(file.size - have, 0)


# ---- one file --------------------------------------------------------------------------


def partial_path(file: RemoteFile) -> Path:
    return incomplete_dir() / f"{_content_id(file)}.part"


def _content_id(file: RemoteFile) -> str:
    if file.sha256:
        return file.sha256
    if file.blob_id:
        return f"git-{file.blob_id}"
    raise DataError(
        f"the Hub publishes no checksum for {file.path}",
        hint="llmcli only installs files it can verify: pick another file",
    )


def _fetch_into(
    listing: RepoListing,
    model: RemoteModel,
    file: RemoteFile,
    folder: Path,
    existing: Manifest | None,
    reporter: PullReporter,
    *,
    wait_s: float,
) -> tuple[GGUFFile, int]:
    """Make ``folder/NAME`` a verified copy of ``file``; returns its header and bytes fetched."""
    final = folder / file.name
    content_id = _content_id(file)
    with exclusive_lock(
        locks_dir() / f"{content_id}.lock", what=file.name, wait_s=wait_s, on_wait=reporter.note
    ):
        if _verified_in_place(final, file, existing):
            return _check_header(final, model, delete_on_error=False), 0
        partial = partial_path(file)
        source = file_source(listing.repo_id, listing.commit, file)
        fetched = transfer(
            source, partial, file, reporter, ref=HubRef(listing.repo_id, filename=file.path)
        )
        header = _check_header(partial, model, delete_on_error=True, name=file.name)
        try:
            os.replace(partial, final)
        except OSError as exc:
            raise StorageError(
                f"cannot move {file.name} into {folder}: {exc.strerror or exc}"
            ) from exc
        return header, fetched


def _verified_in_place(final: Path, file: RemoteFile, existing: Manifest | None) -> bool:
    """Already in the folder and known good: vouched by the manifest, or hashed now."""
    if not final.is_file() or final.stat().st_size != file.size:
        return False
    if _vouched(final, file, existing):
        return True
    hasher = _new_hasher(file)
    _hash_prefix(final, hasher, file.size)
    return hasher.hexdigest() == _expected_digest(file)


def _vouched(final: Path, file: RemoteFile, existing: Manifest | None) -> bool:
    """The manifest lists this very file (name, size, sha256) and it is there."""
    if existing is None or file.sha256 is None or not final.is_file():
        return False
    return (
        any(
            (entry.name, entry.size, entry.sha256) == (file.name, file.size, file.sha256)
            for entry in existing.files
        )
        and final.stat().st_size == file.size
    )


def _check_header(
    path: Path, model: RemoteModel, *, delete_on_error: bool, name: str | None = None
) -> GGUFFile:
    """A whole model (or adapter) must pass ``check_model_file``; a split part must be GGUF."""
    from llmcli.store.gguf import check_model_file, read_gguf

    try:
        if model.parts_expected > 1:
            return read_gguf(path)
        return check_model_file(path, allow_adapter=True)
    except LlmcliError as exc:
        if not delete_on_error:
            raise
        path.unlink(missing_ok=True)
        raise DataError(
            f"{name or path.name} matches its published checksum but is not a usable GGUF model "
            f"({exc.message}); the download was deleted",
            hint="pick another file of the repo (llmcli pull OWNER/REPO --list)",
        ) from exc


# ---- the transfer ----------------------------------------------------------------------


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


def _new_hasher(file: RemoteFile) -> _Hasher:
    """sha256 for LFS files; for plain git files the blob id: sha1 of ``blob SIZE\\0`` + bytes."""
    if file.sha256:
        return hashlib.sha256()
    hasher = hashlib.sha1(usedforsecurity=False)
    hasher.update(b"blob %d\0" % file.size)
    return hasher


def _expected_digest(file: RemoteFile) -> str:
    return (file.sha256 or file.blob_id or "").lower()


def _hash_prefix(path: Path, hasher: _Hasher, limit: int) -> None:
    with open(path, "rb") as src:
        remaining = limit
        while remaining > 0:
            block = src.read(min(CHUNK_BYTES * 8, remaining))
            if not block:
                break
            hasher.update(block)
            remaining -= len(block)


class _PartialFile:
    """The ``.part`` file being filled: its good length and the checksum of those bytes.

    Writes are unbuffered (``os.write``), so ``size`` is exactly what is on disk: a crash or
    a full disk leaves a clean prefix, and the next run resumes from it.
    """

    def __init__(self, path: Path, file: RemoteFile) -> None:
        self.path = path
        self.file = file
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0)
            self.fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise _storage_error(exc, path, file, 0) from exc
        self.size = os.fstat(self.fd).st_size
        self.digest = _new_hasher(file)
        if self.size > file.size:
            self.restart()
        elif self.size:
            _hash_prefix(path, self.digest, self.size)

    def restart(self) -> None:
        os.ftruncate(self.fd, 0)
        self.size = 0
        self.digest = _new_hasher(self.file)

    def append(self, data: bytes) -> None:
        """Write all of ``data``; on failure cut the file back to its good prefix."""
        view = memoryview(data)
        try:
            os.lseek(self.fd, self.size, os.SEEK_SET)
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.size)
            raise _storage_error(exc, self.path, self.file, self.size) from exc
        self.digest.update(data)
        self.size += len(data)

    def close(self) -> None:
        os.close(self.fd)


class _RangeIgnored(Exception):
    """The server answered a Range request with the whole file: restart from zero."""


class _NoProgress(Exception):
    """An attempt that brought no bytes (e.g. a 5xx answer)."""


RESUME_HINT = "run the same llmcli pull again to resume (the partial download is kept)"


def transfer(
    source: FileSource,
    path: Path,
    file: RemoteFile,
    reporter: PullReporter,
    *,
    ref: HubRef,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Download ``file`` into ``path`` (resuming it), verify it; returns bytes fetched.

    On a checksum mismatch the partial is deleted and :class:`DataError` raised; on a full
    disk the partial keeps its good prefix and :class:`StorageError` is raised; on a lost
    connection it retries with Range, then raises :class:`ServiceUnavailable`, partial kept.
    """
    partial = _PartialFile(path, file)
    try:
        start = partial.size
        reporter.start_file(file.name, file.size, start)
        _fill(partial, source, reporter, sleep=sleep, ref=ref)
        reporter.end_file(file.name)
    finally:
        partial.close()
    _verify(partial)
    return file.size - start


def _fill(
    partial: _PartialFile,
    source: FileSource,
    reporter: PullReporter,
    *,
    sleep: Callable[[float], None],
    ref: HubRef,
) -> None:
    """Request until the file is whole; give up after attempts in a row that brought nothing."""
    import httpx2

    file = partial.file
    failures = 0
    while partial.size < file.size:
        before = partial.size
        problem = "the server ended the transfer early"
        try:
            _one_request(partial, source, reporter, ref=ref)
        except _RangeIgnored:
            partial.restart()
            reporter.start_file(file.name, file.size, 0)
            continue
        except (httpx2.TransportError, _NoProgress) as exc:
            problem = str(exc) or type(exc).__name__
        if partial.size >= file.size:
            break
        failures = failures + 1 if partial.size == before else 0
        if failures > len(RETRY_DELAYS_S):
            raise ServiceUnavailable(
                f"lost the connection while downloading {file.name} ({problem}; "
                f"{format_bytes(partial.size)} of {format_bytes(file.size)} kept)",
                hint=RESUME_HINT,
            )
        delay = RETRY_DELAYS_S[max(failures - 1, 0)]
        reporter.note(
            f"{problem} at {format_bytes(partial.size)} of {file.name}; retrying in {delay:g} s"
        )
        sleep(delay)


def _one_request(
    partial: _PartialFile, source: FileSource, reporter: PullReporter, *, ref: HubRef
) -> None:
    """One GET from the partial's end; appends what arrives."""
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session, hf_raise_for_status

    offset, size = partial.size, partial.file.size
    headers = dict(source.headers)
    if offset:
        headers["Range"] = f"bytes={offset}-"
    timeout = httpx2.Timeout(float(constants.HF_HUB_DOWNLOAD_TIMEOUT), connect=10.0)
    request = get_session().stream(
        "GET", source.url, headers=headers, timeout=timeout, follow_redirects=True
    )
    with request as response:
        status = response.status_code
        if status in (408, 429) or status >= 500:
            raise _NoProgress(f"HTTP {status}")
        if status >= 400:
            response.read()
            with hub_errors(ref):
                hf_raise_for_status(response)
        if offset and (
            status == 200 or not _range_starts_at(response.headers.get("Content-Range"), offset)
        ):
            raise _RangeIgnored()
        # No chunk_size: each piece is written as it arrives, so a cut connection loses
        # nothing that was received (a 1 MiB re-chunking buffer would be thrown away).
        for chunk in response.iter_bytes():
            data = chunk[: size - partial.size]
            if not data:
                break
            partial.append(data)
            reporter.advance(len(data))


def _range_starts_at(content_range: str | None, offset: int) -> bool:
    """``bytes 100-199/200`` starts at 100."""
    if not content_range:
        return False
    try:
        first = content_range.split()[1].split("-", 1)[0]
        return int(first) == offset
    except (IndexError, ValueError):
        return False


def _storage_error(exc: OSError, partial: Path, file: RemoteFile, kept: int) -> StorageError:
    if exc.errno in _DISK_FULL:
        return StorageError(
            f"disk full while downloading {file.name} "
            f"({format_bytes(kept)} of {format_bytes(file.size)} kept in {partial})",
            hint=f"free {format_bytes(file.size - kept)} and run the pull again to resume",
        )
    return StorageError(
        f"cannot write {partial}: {exc.strerror or exc}",
        hint="check the disk and its permissions",
    )


def _verify(partial: _PartialFile) -> None:
    """Compare with the published checksum; a mismatch deletes the download."""
    file = partial.file
    got, want = partial.digest.hexdigest(), _expected_digest(file)
    if got == want:
        return
    partial.path.unlink(missing_ok=True)
    kind = "sha256" if file.sha256 else "git blob id"
    raise DataError(
        f"{file.name} is corrupted: its {kind} is {got[:16]}… but the Hub publishes "
        f"{want[:16]}…; the download was deleted",
        hint="run the pull again; if it fails again, a proxy or the Hub is damaging the file",
    )


# ---- the manifest ----------------------------------------------------------------------


def canonical_ref(listing: RepoListing, model: RemoteModel, revision: str | None) -> str:
    """``OWNER/REPO:QUANT`` when the quant names one model in the repo, else ``OWNER/REPO/FILE``."""
    same_quant = [m for m in listing.models if m.quant == model.quant]
    base = (
        f"{listing.repo_id}:{model.quant}"
        if model.quant and len(same_quant) == 1
        else f"{listing.repo_id}/{model.first.path}"
    )
    return f"{base}@{revision}" if revision else base


def _manifest(
    listing: RepoListing, model: RemoteModel, ref: HubRef, headers: list[GGUFFile]
) -> Manifest:
    from llmcli.store.hub import endpoint

    first = headers[0]
    return Manifest(
        ref=canonical_ref(listing, model, ref.revision),
        repo=listing.repo_id,
        revision=ref.revision,
        commit=listing.commit,
        key=model.key,
        quant=model.quant,
        files=tuple(
            ManifestFile(name=f.name, path=f.path, size=f.size, sha256=f.sha256)
            for f in model.files
        ),
        pulled_at=now_utc(),
        endpoint=endpoint(),
        architecture=first.architecture,
        parameters=sum(h.parameter_count for h in headers),
        context_length=first.context_length,
        file_type=first.file_type_name,
    )


def _remove_stale_files(folder: Path, manifest: Manifest) -> None:
    """After an update, model files the new manifest no longer lists."""
    keep = {f.name for f in manifest.files}
    for path in folder.glob("*.gguf"):
        if path.name not in keep:
            path.unlink(missing_ok=True)
