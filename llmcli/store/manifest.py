"""The manifest of a pulled model: what it is, where it came from, and the checksums it passed.

A model folder counts as a model only once its ``manifest.json`` exists, and the manifest
is written last (temp file + rename), after every file in it was verified. Reading is
strict: a damaged manifest raises :class:`ManifestError` naming the file, so one bad
folder cannot be mistaken for a model, and listing can skip it with a warning.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llmcli.errors import DataError

MANIFEST_NAME = "manifest.json"
SCHEMA = 1


class ManifestError(DataError):
    """A manifest that cannot be read; the message names the file."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"corrupted manifest {path}: {problem}",
            hint=f"pull the model again, or delete the folder {path.parent}",
        )
        self.path = path


@dataclass(frozen=True)
class ManifestFile:
    name: str  # in the model folder
    path: str  # in the repo
    size: int
    sha256: str | None  # None only for non-LFS files, verified by git blob sha1 instead


@dataclass(frozen=True)
class Manifest:
    ref: str  # canonical reference: OWNER/REPO:QUANT or OWNER/REPO/FILE.gguf (+@REVISION)
    repo: str
    revision: str | None  # as asked; None means the default branch
    commit: str
    key: str  # the model's name within the repo (folder + stem)
    quant: str | None
    files: tuple[ManifestFile, ...]
    pulled_at: str
    endpoint: str
    architecture: str | None = None
    parameters: int | None = None
    context_length: int | None = None
    file_type: str | None = None
    schema: int = field(default=SCHEMA)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> str:
        data = asdict(self)
        data["size"] = self.size
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


def now_utc() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Write atomically: readers see the old manifest or the new one, never half of one."""
    from llmcli.atomic import write_atomic

    path = folder / MANIFEST_NAME
    write_atomic(path, manifest.to_json())
    return path


def read_manifest(path: Path) -> Manifest:
    """Parse and validate ``path``; every problem becomes a :class:`ManifestError`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(path, exc.strerror or str(exc)) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(path, f"not valid JSON ({exc})") from exc
    try:
        return _from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(path, f"unexpected content ({type(exc).__name__}: {exc})") from exc


def _from_dict(data: Any) -> Manifest:
    if not isinstance(data, dict):
        raise TypeError("not an object")
    if data.get("schema") != SCHEMA:
        raise ValueError(f"schema {data.get('schema')!r}, expected {SCHEMA}")
    files = tuple(
        ManifestFile(
            name=_text(f, "name"),
            path=_text(f, "path"),
            size=_int(f, "size"),
            sha256=_opt_text(f, "sha256"),
        )
        for f in _list(data, "files")
    )
    if not files:
        raise ValueError("no files")
    for file in files:
        if "/" in file.name or "\\" in file.name or file.name in ("", ".", ".."):
            raise ValueError(f"bad file name {file.name!r}")
    return Manifest(
        ref=_text(data, "ref"),
        repo=_text(data, "repo"),
        revision=_opt_text(data, "revision"),
        commit=_text(data, "commit"),
        key=_text(data, "key"),
        quant=_opt_text(data, "quant"),
        files=files,
        pulled_at=_text(data, "pulled_at"),
        endpoint=_text(data, "endpoint"),
        architecture=_opt_text(data, "architecture"),
        parameters=_opt_int(data, "parameters"),
        context_length=_opt_int(data, "context_length"),
        file_type=_opt_text(data, "file_type"),
    )


def _text(data: Any, key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is not a string")
    return value


def _opt_text(data: Any, key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{key} is not a string")
    return value


def _int(data: Any, key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"{key} is not a size")
    return value


def _opt_int(data: Any, key: str) -> int | None:
    return None if data.get(key) is None else _int(data, key)


def _list(data: Any, key: str) -> list[Any]:
    value = data[key]
    if not isinstance(value, list):
        raise TypeError(f"{key} is not a list")
    return value
