"""The local model store: where models live, finding them by reference, removing them, aliases.

Layout under :func:`llmcli.paths.models_dir`::

    OWNER/REPO/KEY[@REVISION]/   one model: its .gguf file(s) and manifest.json
    .incomplete/SHA256.part      downloads in progress, kept across runs for resume
    .locks/SHA256.lock           one writer per file
    aliases.json                 {"name": "reference"}

Nothing here touches the network or imports huggingface_hub or llama_cpp: ``models list``
and ``ask -m OWNER/REPO`` must work offline and start fast.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from llmcli import paths
from llmcli.errors import DataError, StorageError, UsageError
from llmcli.store.manifest import MANIFEST_NAME, Manifest, ManifestError, read_manifest
from llmcli.store.refs import HubRef, PathRef, is_valid_alias_name, parse_ref, quant_preference

ALIASES_NAME = "aliases.json"
INCOMPLETE_DIR = ".incomplete"
LOCKS_DIR = ".locks"


@dataclass(frozen=True)
class StoredModel:
    folder: Path
    manifest: Manifest

    @property
    def path(self) -> Path:
        """The file to load: the only file, or the first part of a split model."""
        return self.folder / self.manifest.files[0].name

    @property
    def ref(self) -> str:
        return self.manifest.ref

    @property
    def is_complete(self) -> bool:
        return all((self.folder / f.name).is_file() for f in self.manifest.files)


def store_root() -> Path:
    return paths.models_dir()


def model_folder(repo_id: str, key: str, revision: str | None) -> Path:
    """``OWNER/REPO/KEY[@REVISION]``; folders in the key and revision are escaped."""
    name = key.replace("/", "__")
    if revision:
        name += "@" + quote(revision, safe="")
    owner, repo = repo_id.split("/", 1)
    return store_root() / owner / repo / name


def incomplete_dir() -> Path:
    return store_root() / INCOMPLETE_DIR


def locks_dir() -> Path:
    return store_root() / LOCKS_DIR


# ---- listing and lookup ----------------------------------------------------------------


def list_stored() -> tuple[list[StoredModel], list[ManifestError]]:
    """Every model with a readable manifest, and the manifests that could not be read."""
    models: list[StoredModel] = []
    problems: list[ManifestError] = []
    root = store_root()
    if not root.is_dir():
        return models, problems
    for manifest_path in sorted(root.glob(f"*/*/*/{MANIFEST_NAME}")):
        if any(part.startswith(".") for part in manifest_path.relative_to(root).parts[:3]):
            continue
        try:
            models.append(StoredModel(manifest_path.parent, read_manifest(manifest_path)))
        except ManifestError as exc:
            problems.append(exc)
    return models, problems


def matching_stored(ref: HubRef) -> tuple[list[StoredModel], list[ManifestError]]:
    """Stored models of ``ref``'s repo that fit its quant / file / revision, best first."""
    models, problems = list_stored()
    found = select(models, ref)
    own_problems = [p for p in problems if _is_repo_folder(p.path, ref.repo_id)]
    return found, own_problems


def select(models: list[StoredModel], ref: HubRef) -> list[StoredModel]:
    """The models that fit ``ref``, best first (default branch, then the default quant)."""
    repo = ref.repo_id.lower()
    found = [m for m in models if m.manifest.repo.lower() == repo and _fits(m.manifest, ref)]
    found.sort(
        key=lambda m: (_revision_rank(m.manifest, ref), quant_preference(m.manifest.quant), m.ref)
    )
    return found


def find_stored(ref: HubRef) -> StoredModel | None:
    """The stored model ``ref`` means, or ``None``; a damaged manifest of that repo is raised."""
    found, problems = matching_stored(ref)
    if found:
        return found[0]
    if problems:
        raise problems[0]
    return None


def _fits(manifest: Manifest, ref: HubRef) -> bool:
    if ref.quant and (manifest.quant or "").upper() != ref.quant:
        return False
    if ref.filename and ref.filename.lower() not in {f.path.lower() for f in manifest.files}:
        return False
    if ref.revision:
        return ref.revision in (manifest.revision, manifest.commit) or (
            len(ref.revision) >= 7 and manifest.commit.startswith(ref.revision)
        )
    return True


def _revision_rank(manifest: Manifest, ref: HubRef) -> int:
    """Without ``@REVISION`` in the reference, prefer models pulled from the default branch."""
    return 0 if ref.revision or manifest.revision is None else 1


def _is_repo_folder(path: Path, repo_id: str) -> bool:
    owner, _, repo = repo_id.partition("/")
    try:
        parts = path.relative_to(store_root()).parts
    except ValueError:
        return False
    return (
        len(parts) >= 2 and parts[0].lower() == owner.lower() and parts[1].lower() == repo.lower()
    )


def remove_stored(model: StoredModel) -> None:
    """Delete the model folder, then the repo and owner folders if they are left empty."""
    try:
        shutil.rmtree(model.folder)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StorageError(
            f"cannot remove {model.folder}: {exc.strerror or exc}", hint="check its permissions"
        ) from exc
    for parent in (model.folder.parent, model.folder.parent.parent):
        try:
            parent.rmdir()
        except OSError:
            break


# ---- aliases ---------------------------------------------------------------------------


def aliases_file() -> Path:
    return store_root() / ALIASES_NAME


def load_aliases() -> dict[str, str]:
    """``{name: reference}``; a damaged file raises a :class:`DataError` naming it."""
    path = aliases_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _aliases_error(path, str(exc)) from exc
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise _aliases_error(path, "expected an object of name → reference strings")
    return dict(data)


def _aliases_error(path: Path, problem: str) -> DataError:
    return DataError(f"corrupted alias file {path}: {problem}", hint=f"fix or delete {path}")


def set_alias(name: str, target: str) -> str:
    """Save ``name`` → ``target`` and return the target as stored (paths made absolute)."""
    if not is_valid_alias_name(name):
        raise UsageError(
            f"bad alias name {name!r}",
            hint="use letters, digits, '.', '_', '-' (no '/', ':', '@', and not ending in .gguf)",
        )
    parsed = parse_ref(target)
    if not isinstance(parsed, (HubRef, PathRef)):
        raise UsageError(
            f"an alias must point to a Hub reference or a file, not to the alias {target!r}"
        )
    if isinstance(parsed, PathRef):
        target = str(paths.user_path(parsed.text).resolve())
    else:
        target = str(parsed)
    aliases = load_aliases()
    aliases[name] = target
    _save_aliases(aliases)
    return target


def remove_alias(name: str) -> bool:
    aliases = load_aliases()
    if name not in aliases:
        return False
    del aliases[name]
    _save_aliases(aliases)
    return True


def _save_aliases(aliases: dict[str, str]) -> None:
    from llmcli.atomic import write_atomic

    write_atomic(aliases_file(), json.dumps(aliases, indent=2, sort_keys=True) + "\n")
