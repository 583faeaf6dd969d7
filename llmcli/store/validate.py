"""What a Hub (or an ``HF_ENDPOINT`` mirror) publishes is checked here before it is used.

A sha256 becomes a partial's file name, a file name becomes a path in the model folder,
a commit goes into the manifest and URLs, the repo id names the store folder. A mirror
that publishes ``../../x`` as any of them must not make ``pull`` read, write or delete
anything outside the store, so every such value is validated once, at the edge, and a
bad one fails the whole listing with :class:`~llmcli.errors.DataError` (exit 65).
"""

from __future__ import annotations

import re
from typing import Any

from llmcli.errors import DataError

_SHA256 = re.compile(r"[0-9a-f]{64}")
_GIT_SHA1 = re.compile(r"[0-9a-f]{40}")
_REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_SIZE = 1 << 50  # 1 PiB: no model file is larger; a bigger number is a lie
MAX_PATH = 1024
HINT = "the Hub or mirror at HF_ENDPOINT published bad metadata: check HF_ENDPOINT, try later"


def _bad(what: str, value: object) -> DataError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return DataError(f"the Hub published an invalid {what}: {shown}", hint=HINT)


def sha256(value: object, path: str) -> str:
    """Exactly 64 lowercase hex characters (upper case is folded)."""
    if not isinstance(value, str) or not _SHA256.fullmatch(value.lower()):
        raise _bad(f"sha256 for {path}", value)
    return value.lower()


def blob_id(value: object, path: str) -> str | None:
    """A git blob sha1 (40 hex) or nothing."""
    if value is None:
        return None
    if not isinstance(value, str) or not _GIT_SHA1.fullmatch(value.lower()):
        raise _bad(f"git blob id for {path}", value)
    return value.lower()


def commit(value: object) -> str:
    """A commit is 40 hex characters on the Hub."""
    if not isinstance(value, str) or not _GIT_SHA1.fullmatch(value.lower()):
        raise _bad("commit", value)
    return value.lower()


def size(value: object, path: str) -> int:
    """A non-negative integer below :data:`MAX_SIZE` (``bool`` and strings are not sizes)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SIZE:
        raise _bad(f"size for {path}", value)
    return value


def repo_path(value: object) -> str:
    """A relative path inside the repo: ``/``-separated, no ``..``/``.``/empty parts, no NUL,
    no backslash, no control characters."""
    if not isinstance(value, str) or not value or len(value) > MAX_PATH:
        raise _bad("file name", value)
    parts = value.split("/")
    if any(part in ("", ".", "..") for part in parts) or any(
        ord(ch) < 0x20 or ch in "\\\x7f" for ch in value
    ):
        raise _bad("file name", value)
    return value


def repo_id(value: object) -> str:
    """``OWNER/REPO`` with Hub-legal characters (a renamed repo may answer with a new name)."""
    if not isinstance(value, str):
        raise _bad("repository id", value)
    parts = value.split("/")
    if len(parts) != 2 or not all(_REPO_PART.fullmatch(p) and ".." not in p for p in parts):
        raise _bad("repository id", value)
    return value


def lfs_fields(lfs: Any, path: str) -> tuple[int, str]:
    """The (size, sha256) of an LFS entry, validated."""
    return size(getattr(lfs, "size", None), path), sha256(getattr(lfs, "sha256", None), path)
