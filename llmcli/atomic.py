"""The one way llmcli replaces a file: a temp file beside it, fsync, rename."""

from __future__ import annotations

import os
from pathlib import Path

from llmcli.errors import StorageError


def write_atomic(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write to a temp file beside ``path``, fsync, rename: never a half-written config."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if mode is None:
            mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
        import tempfile

        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _write_error(path, exc) from exc


def _write_error(path: Path, exc: OSError) -> StorageError:
    return StorageError(
        f"cannot write {path}: {exc.strerror or exc}", hint="check disk space and permissions"
    )


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
