"""Pull a model into the store: resumable transfer, sha256 check, GGUF check, then visible.

Why not ``hf_hub_download``: in huggingface_hub 2.x its partial file has a random name
and is deleted on failure, so an interrupted multi-GB pull restarts from zero in the next
process. Here each file's partial lives at ``.incomplete/SHA256.part`` (content-addressed,
so a partial is only ever resumed into the same bytes) and the next run continues it with
an HTTP Range request. huggingface_hub still provides URLs, auth headers, metadata and
its shared ``httpx2`` client (the HTTP client it depends on); we only move the bytes.

Order for every file: lock → transfer → verify sha256 → check the GGUF header → rename
into the model folder. The manifest is written last, so a model is visible only whole.
This module is that order (folders, locks, manifests, disk space); moving one file's bytes
(Range requests, the ``.part`` file, the checksum as bytes arrive) is
:mod:`llmcli.store.transfer`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llmcli.errors import DataError, LlmcliError, StorageError
from llmcli.store.catalog import (
    StoredModel,
    incomplete_dir,
    locks_dir,
    model_folder,
    store_root,
)
from llmcli.store.hub import (
    Choice,
    RemoteFile,
    RemoteModel,
    RepoListing,
    file_source,
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
from llmcli.store.transfer import PullReporter, expected_digest, hash_prefix, new_hasher, transfer
from llmcli.units import format_bytes

if TYPE_CHECKING:
    from llmcli.store.gguf_header import GGUFFile

DEFAULT_WAIT_S = 300.0


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
    hasher = new_hasher(file)
    hash_prefix(final, hasher, file.size)
    return hasher.hexdigest() == expected_digest(file)


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
