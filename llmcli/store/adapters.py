"""Does a LoRA adapter fit a base model? Checked from the two GGUF headers, before loading.

llama.cpp refuses a mismatched adapter too, but only after the model is loaded,
and with a NULL pointer and a log line that ``verbose=False`` hides. Reading the
headers in pure Python gives the user the reason (which tensor, which shapes) up
front, and needs no engine.

Layout (llama.cpp's ``llama_adapter_lora_init``, which ``convert_lora_to_gguf.py``
writes): ``general.type = adapter``, ``adapter.type = lora``, the base model's
``general.architecture``, and for each adapted weight ``W`` of ggml shape
``(n_in, n_out)`` a pair ``W.lora_a`` of shape ``(n_in, rank)`` and ``W.lora_b`` of
shape ``(rank, n_out)``. The token embedding is the exception: its pair is stored
the other way round (``a`` is ``(rank, n_vocab)``, ``b`` is ``(rank, n_hidden)``).
``*_norm.weight`` tensors are allowed and ignored, as llama.cpp does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from llmcli.errors import DataError
from llmcli.store.gguf import read_gguf
from llmcli.store.gguf_header import GGUFFile, TensorInfo

_A, _B = ".lora_a", ".lora_b"
MISMATCH_HINT = "use an adapter made for this base model (see 'llmcli models show ADAPTER')"


@dataclass(frozen=True)
class AdapterInfo:
    """What the check learned about an adapter that fits."""

    path: Path
    architecture: str
    alpha: float | None
    ranks: tuple[int, ...]
    targets: tuple[str, ...]  # base-model weight names the adapter changes


def check_adapters(paths: Iterable[Path], base: GGUFFile) -> list[AdapterInfo]:
    """Check every adapter against ``base``; the first that does not fit raises ``DataError``."""
    return [check_adapter(path, base) for path in paths]


def check_adapter(path: Path, base: GGUFFile) -> AdapterInfo:
    """Refuse (``DataError``, exit 65) an adapter whose layout, architecture or shapes differ."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"LoRA adapter {path} does not exist",
            hint="check the path; a Hub adapter must be pulled first: llmcli pull OWNER/REPO",
        )
    adapter = read_gguf(path)
    _check_kind(adapter, base)
    pairs = _pairs(adapter)
    base_tensors = {tensor.name: tensor for tensor in base.tensors}
    ranks = set()
    for name, (a, b) in sorted(pairs.items()):
        weight = base_tensors.get(name)
        if weight is None:
            raise _mismatch(path, base, f"it adapts {name}, which the model does not have")
        ranks.add(_check_shapes(path, base, weight, a, b))
    return AdapterInfo(
        path=path,
        architecture=adapter.architecture or "",
        alpha=_alpha(adapter),
        ranks=tuple(sorted(ranks)),
        targets=tuple(sorted(pairs)),
    )


def _check_kind(adapter: GGUFFile, base: GGUFFile) -> None:
    path = adapter.path
    if not adapter.is_lora_adapter:
        what = "a model" if adapter.tensors else "not an adapter"
        raise DataError(
            f"{path} is {what}, not a LoRA adapter (general.type is not 'adapter')",
            hint="pass the model with -m and an adapter GGUF (convert_lora_to_gguf.py) with --lora",
        )
    kind = adapter.metadata.get("adapter.type")
    if kind != "lora":
        raise DataError(
            f"{path} is a {kind!r} adapter; llama.cpp applies only 'lora' adapters here",
            hint="convert the adapter with llama.cpp's convert_lora_to_gguf.py",
        )
    if adapter.architecture != base.architecture:
        raise _mismatch(
            path,
            base,
            f"it was made for a {adapter.architecture or 'unknown'} model "
            f"but the model is {base.architecture or 'unknown'}",
        )


def _pairs(adapter: GGUFFile) -> dict[str, tuple[TensorInfo, TensorInfo]]:
    """Group ``W.lora_a`` / ``W.lora_b`` by ``W``; a half pair or a stray tensor is refused."""
    halves: dict[str, dict[str, TensorInfo]] = {}
    for tensor in adapter.tensors:
        suffix = tensor.name[-len(_A) :]
        if suffix in (_A, _B):
            halves.setdefault(tensor.name[: -len(_A)], {})[suffix] = tensor
        elif not tensor.name.endswith("_norm.weight"):
            raise DataError(
                f"{adapter.path}: tensor {tensor.name!r} is not part of a LoRA pair "
                "(names end in .lora_a or .lora_b)",
                hint="convert the adapter with llama.cpp's convert_lora_to_gguf.py",
            )
    pairs: dict[str, tuple[TensorInfo, TensorInfo]] = {}
    for name, half in halves.items():
        if _A not in half or _B not in half:
            missing = _A if _A not in half else _B
            raise DataError(
                f"{adapter.path}: {name}{missing} is missing (LoRA tensors come in pairs)",
                hint="the adapter file is incomplete: convert or download it again",
            )
        pairs[name] = (half[_A], half[_B])
    if not pairs:
        raise DataError(
            f"{adapter.path} has no LoRA tensors",
            hint="convert the adapter with llama.cpp's convert_lora_to_gguf.py",
        )
    return pairs


def _check_shapes(
    path: Path, base: GGUFFile, weight: TensorInfo, a: TensorInfo, b: TensorInfo
) -> int:
    """Return the pair's rank, or refuse shapes that do not multiply into ``weight``."""
    if len(weight.shape) != 2 or len(a.shape) != 2 or len(b.shape) != 2:
        raise _mismatch(path, base, f"{weight.name} and its LoRA pair are not all matrices")
    n_in, n_out = weight.shape
    if weight.name == "token_embd.weight":
        rank, expected_a, expected_b = a.shape[0], (a.shape[0], n_out), (a.shape[0], n_in)
    else:
        rank, expected_a, expected_b = a.shape[1], (n_in, a.shape[1]), (a.shape[1], n_out)
    if a.shape != expected_a or b.shape != expected_b:
        raise _mismatch(
            path,
            base,
            f"{weight.name} is {_dims(weight.shape)} in the model, but the adapter's "
            f"lora_a is {_dims(a.shape)} and lora_b {_dims(b.shape)} "
            f"(expected {_dims(expected_a)} and {_dims(expected_b)})",
        )
    return int(rank)


def _mismatch(path: Path, base: GGUFFile, why: str) -> DataError:
    return DataError(
        f"LoRA adapter {path.name} does not fit {base.path.name}: {why}", hint=MISMATCH_HINT
    )


def _dims(shape: tuple[int, ...]) -> str:
    return "×".join(str(d) for d in shape)


def _alpha(adapter: GGUFFile) -> float | None:
    value = adapter.metadata.get("adapter.lora.alpha")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
