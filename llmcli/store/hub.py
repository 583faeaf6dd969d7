"""What a Hub repo holds, through huggingface_hub: GGUF models grouped, quant chosen, errors named.

huggingface_hub is imported inside functions only: ``llmcli --help`` and ``llmcli models
list`` never pay for it. Its exceptions are turned into llmcli errors here, in one place,
so every command gets the same message for a gated repo, a missing quant or no network.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from llmcli.errors import (
    LlmcliError,
    ModelNotFound,
    ServiceUnavailable,
    TemporaryFailure,
    UsageError,
)
from llmcli.store import validate
from llmcli.store.refs import (
    DEFAULT_QUANT,
    GGUF_SUFFIX,
    HubRef,
    model_stem,
    quant_of,
    quant_preference,
    split_part,
)

TOKEN_HINT = "set HF_TOKEN to a token that can read it, or run 'hf auth login'"
OFFLINE_HINT = "unset HF_HUB_OFFLINE to download"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repo, with the checksum the Hub publishes for it."""

    path: str  # in the repo, may include folders
    size: int
    sha256: str | None  # LFS files (every real GGUF)
    blob_id: str | None = None  # git blob sha1, the only checksum of a non-LFS file

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class RemoteModel:
    """One model: a GGUF file, or every part of a split model (``-0000N-of-0000M``)."""

    key: str  # repo folder + stem: unique in the repo, names the store folder
    quant: str | None
    files: tuple[RemoteFile, ...]
    parts_expected: int = 1

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def first(self) -> RemoteFile:
        return self.files[0]

    @property
    def complete(self) -> bool:
        return len(self.files) == self.parts_expected

    @property
    def is_projector(self) -> bool:
        """Vision projectors (``mmproj-*.gguf``) ride along in repos; they are not chat models."""
        return "mmproj" in self.first.name.lower()

    @property
    def label(self) -> str:
        """How ``--list`` names it: the first file, plus the number of parts."""
        if self.parts_expected > 1:
            return f"{self.first.path} (+{self.parts_expected - 1} parts)"
        return self.first.path


@dataclass(frozen=True)
class RepoListing:
    repo_id: str
    revision: str | None  # as asked (None: the default branch)
    commit: str
    models: tuple[RemoteModel, ...]
    gated: bool = False


@dataclass(frozen=True)
class Choice:
    """The model a reference picks, and a note when it is not exactly what was asked."""

    model: RemoteModel
    note: str | None = None


class QuantNotFound(ModelNotFound):
    """The repo exists but has no file for the quant or name asked; carries what it does have."""

    def __init__(self, message: str, hint: str, listing: RepoListing) -> None:
        ModelNotFound.__init__(self, message, hint=hint)
        self.listing = listing


# ---- grouping and choosing (pure) ------------------------------------------------------


def group_models(files: Iterable[RemoteFile]) -> tuple[RemoteModel, ...]:
    """GGUF files grouped into models: split parts become one model, in part order."""
    groups: dict[tuple[str, int], list[tuple[int, RemoteFile]]] = defaultdict(list)
    for file in files:
        if not file.path.lower().endswith(GGUF_SUFFIX):
            continue
        folder = file.path.rsplit("/", 1)[0] + "/" if "/" in file.path else ""
        part = split_part(file.name)
        count = part.count if part else 1
        groups[(folder + model_stem(file.name), count)].append((part.index if part else 1, file))
    models = [
        RemoteModel(
            key=key,
            quant=quant_of(members[0][1].name),
            files=tuple(f for _, f in sorted(members, key=lambda m: m[0])),
            parts_expected=count,
        )
        for (key, count), members in groups.items()
    ]
    return tuple(sorted(models, key=lambda m: (quant_preference(m.quant), m.key)))


def choose_model(listing: RepoListing, ref: HubRef) -> Choice:
    """The model ``ref`` names: by file, by quant, or the default quant (Q4_K_M, else nearest)."""
    if ref.filename:
        return Choice(_by_file(listing, ref))
    if ref.quant:
        return Choice(_by_quant(listing, ref))
    return _by_default(listing, ref)


def _by_file(listing: RepoListing, ref: HubRef) -> RemoteModel:
    wanted = (ref.filename or "").lower()
    for model in listing.models:
        if any(f.path.lower() == wanted for f in model.files):
            return _checked_complete(model, listing)
    raise QuantNotFound(
        f"{listing.repo_id} has no file {ref.filename}",
        hint=_has_hint(listing),
        listing=listing,
    )


def _by_quant(listing: RepoListing, ref: HubRef) -> RemoteModel:
    matches = [m for m in listing.models if m.quant == ref.quant]
    if len(matches) > 1:
        matches = [m for m in matches if not m.is_projector] or matches
    if not matches:
        raise QuantNotFound(
            f"{listing.repo_id} has no {ref.quant} file",
            hint=_has_hint(listing),
            listing=listing,
        )
    if len(matches) > 1:
        names = ", ".join(m.first.path for m in matches)
        raise UsageError(
            f"{ref} matches several files: {names}",
            hint=f"name one: llmcli pull {listing.repo_id}/FILE.gguf",
        )
    return _checked_complete(matches[0], listing)


def _by_default(listing: RepoListing, ref: HubRef) -> Choice:
    candidates = [m for m in listing.models if m.complete and not m.is_projector]
    if not candidates:
        raise QuantNotFound(
            f"{listing.repo_id} has no GGUF model files",
            hint="llmcli runs GGUF files: look for a repo with GGUF in its name",
            listing=listing,
        )
    chosen = candidates[0]  # group_models sorted them by preference
    if chosen.quant == DEFAULT_QUANT:
        return Choice(chosen)
    if chosen.quant is None:
        note = f"no {DEFAULT_QUANT} file in {listing.repo_id}; using {chosen.first.path}"
    else:
        note = (
            f"no {DEFAULT_QUANT} file in {listing.repo_id}; using {chosen.quant}, "
            f"the nearest available (pick another with {ref.repo_id}:QUANT)"
        )
    return Choice(chosen, note)


def _checked_complete(model: RemoteModel, listing: RepoListing) -> RemoteModel:
    if not model.complete:
        raise ModelNotFound(
            f"{listing.repo_id} has only {len(model.files)} of the "
            f"{model.parts_expected} parts of {model.key}",
            hint="the upload looks unfinished: try another quant or file",
        )
    return model


def _has_hint(listing: RepoListing) -> str:
    return f"it has {available_summary(listing)}; see 'llmcli pull {listing.repo_id} --list'"


def available_summary(listing: RepoListing, limit: int = 12) -> str:
    """``Q4_K_M, Q8_0, F16`` — quants (or file names) the repo has, for one-line hints."""
    names = [m.quant or m.first.path for m in listing.models]
    if not names:
        return "no GGUF files"
    shown = ", ".join(dict.fromkeys(names[:limit]))
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# ---- talking to the Hub ----------------------------------------------------------------


def endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def is_offline() -> bool:
    """``HF_HUB_OFFLINE`` as huggingface_hub reads it (also ``TRANSFORMERS_OFFLINE``)."""
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


def fetch_listing(ref: HubRef) -> RepoListing:
    """The repo's files with sizes and LFS sha256 (one ``model_info(files_metadata=True)`` call)."""
    from huggingface_hub import HfApi

    if is_offline():
        raise ServiceUnavailable(
            f"cannot list {ref.repo_id}: offline mode is on (HF_HUB_OFFLINE)", hint=OFFLINE_HINT
        )
    with hub_errors(ref):
        info = HfApi().model_info(ref.repo_id, revision=ref.revision, files_metadata=True)
    files = [_remote_file(s) for s in info.siblings or ()]
    return RepoListing(
        repo_id=validate.repo_id(info.id or ref.repo_id),
        revision=ref.revision,
        commit=validate.commit(info.sha),
        models=group_models(files),
        gated=bool(info.gated),
    )


def _remote_file(sibling: Any) -> RemoteFile:
    """One sibling, every field validated (:mod:`llmcli.store.validate`): never a path."""
    path = validate.repo_path(sibling.rfilename)
    lfs = sibling.lfs
    if lfs:
        size, sha256 = validate.lfs_fields(lfs, path)
    else:
        size, sha256 = validate.size(sibling.size or 0, path), None
    return RemoteFile(
        path=path, size=size, sha256=sha256, blob_id=validate.blob_id(sibling.blob_id, path)
    )


@dataclass(frozen=True)
class FileSource:
    """Where to GET a file and with which headers (auth, user agent)."""

    url: str
    headers: dict[str, str]
    size: int | None


def file_source(repo_id: str, commit: str, file: RemoteFile) -> FileSource:
    """A HEAD on the file's ``resolve`` URL: checks access (gated repos fail here) and the size."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    url = hf_hub_url(repo_id, file.path, revision=commit)
    with hub_errors(HubRef(repo_id, filename=file.path, revision=commit)):
        meta = get_hf_file_metadata(url)
    headers = build_hf_headers()
    headers["Accept-Encoding"] = "identity"  # byte offsets must be offsets in the file
    return FileSource(url=url, headers=headers, size=meta.size)


@contextmanager
def hub_errors(ref: HubRef) -> Iterator[None]:
    """Turn huggingface_hub / HTTP exceptions into llmcli errors that say what to do."""
    try:
        yield
    except LlmcliError:
        raise
    except Exception as exc:
        translated = translate_hub_error(exc, ref)
        if translated is None:
            raise
        raise translated from exc


def translate_hub_error(exc: BaseException, ref: HubRef) -> LlmcliError | None:
    import httpx2
    from huggingface_hub import errors as hf

    repo = ref.repo_id
    if isinstance(exc, hf.OfflineModeIsEnabled):
        return ServiceUnavailable(
            f"cannot reach the Hub for {ref}: offline mode is on (HF_HUB_OFFLINE)",
            hint=OFFLINE_HINT,
        )
    if isinstance(exc, hf.GatedRepoError):
        return ModelNotFound(
            f"{repo} is gated: accept its terms at {endpoint()}/{repo}, then authenticate",
            hint=TOKEN_HINT,
        )
    if isinstance(exc, hf.RepositoryNotFoundError):
        return ModelNotFound(
            f"repository {repo} not found on {endpoint()} (or it is private)",
            hint=f"check the name; for a private repo {TOKEN_HINT}",
        )
    if isinstance(exc, hf.RevisionNotFoundError):
        return ModelNotFound(
            f"revision {ref.revision} not found in {repo}", hint="check the branch, tag or commit"
        )
    if isinstance(exc, hf.RemoteEntryNotFoundError):
        return ModelNotFound(f"{ref} not found on the Hub", hint=f"see 'llmcli pull {repo} --list'")
    if isinstance(exc, hf.HfHubHTTPError):
        return _from_status(exc, ref)
    if isinstance(exc, httpx2.TransportError):
        return ServiceUnavailable(
            f"cannot reach the Hub at {endpoint()}: {exc or type(exc).__name__}",
            hint="check the network, HF_ENDPOINT and proxy settings, then try again",
        )
    return None


def _from_status(exc: Any, ref: HubRef) -> LlmcliError:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", 0) or 0
    if status == 401:
        return ModelNotFound(f"the Hub refused the token for {ref.repo_id} (401)", hint=TOKEN_HINT)
    if status == 403:
        return ModelNotFound(f"access to {ref.repo_id} is forbidden (403)", hint=TOKEN_HINT)
    if status == 429:
        return TemporaryFailure(
            f"the Hub is rate limiting requests for {ref}", hint="wait a minute and try again"
        )
    if status >= 500:
        return ServiceUnavailable(f"the Hub answered {status} for {ref}", hint="try again later")
    return LlmcliError(
        f"the Hub answered {status or 'an error'} for {ref}", hint="see LLMCLI_DEBUG=1 for details"
    )
