"""Model references and GGUF file names, parsed without touching the disk or the network.

A reference is what users type after ``-m``, ``pull``, ``models rm``:

- ``OWNER/REPO`` — a Hub repo; the default quant (Q4_K_M, else the nearest) is chosen
- ``OWNER/REPO:QUANT`` — a quant, case-insensitive (``:q8_0``)
- ``OWNER/REPO/FILE.gguf`` — one file (or the first part of a split model)
- any of those with an ``@REVISION`` suffix (branch, tag or commit)
- a local path (``./m.gguf``, ``/abs/m.gguf``, ``~/m.gguf``, ``m.gguf``)
- an alias name made with ``llmcli models alias NAME REF``

Parsing is pure (it never looks at the filesystem), so it can be property-tested; the
resolver decides between "existing file" and "Hub reference" before calling it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmcli.errors import UsageError

GGUF_SUFFIX = ".gguf"
DEFAULT_QUANT = "Q4_K_M"

REF_FORMS_HINT = (
    "use OWNER/REPO, OWNER/REPO:QUANT, OWNER/REPO/FILE.gguf (each with an optional @REVISION), "
    "a path to a .gguf file, or an alias"
)

# Hub repo ids: "owner/name", each part alphanumeric plus "-", "_", "." inside, at most 96 chars,
# no "--" or ".." (the Hub's own rule).
_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?", re.ASCII)
_REVISION_RE = re.compile(r"[A-Za-z0-9._/-]{1,200}", re.ASCII)
_QUANT_TOKEN_RE = re.compile(r"[A-Za-z0-9_]{1,40}", re.ASCII)
_ALIAS_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
_FILE_SEGMENT_RE = re.compile(r"[^\s@:/\\]{1,255}")

# Quant names as llama.cpp's quantize tool writes them into file names (Q4_K_M, IQ3_XXS,
# Q4_0_4_4, TQ1_0, BF16 …), found anywhere in a file name between non-alphanumerics.
_QUANT_IN_NAME_RE = re.compile(
    r"(?<![A-Za-z0-9])("
    r"(?:I|T)?Q[1-8](?:_[0-9](?:_[0-9]_[0-9])?|_K(?:_(?:XL|S|M|L))?|_(?:XXS|XS|NL|S|M))?"
    r"|BF16|F16|FP16|F32|FP32|MXFP4(?:_MOE)?"
    r")(?![A-Za-z0-9])",
    re.IGNORECASE | re.ASCII,
)
_SPLIT_RE = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)

# Approximate bits per weight (llama.cpp's quantize table); "nearest to Q4_K_M" means
# nearest in size, ties going to the larger (better) quant.
_BITS_PER_WEIGHT = {
    "IQ1_S": 1.56,
    "IQ1_M": 1.75,
    "TQ1_0": 1.69,
    "IQ2_XXS": 2.06,
    "TQ2_0": 2.06,
    "IQ2_XS": 2.31,
    "IQ2_S": 2.5,
    "IQ2_M": 2.7,
    "Q2_K": 2.96,
    "Q2_K_S": 2.9,
    "IQ3_XXS": 3.06,
    "IQ3_XS": 3.3,
    "IQ3_S": 3.44,
    "Q3_K_S": 3.5,
    "IQ3_M": 3.66,
    "Q3_K_M": 3.91,
    "Q3_K_L": 4.27,
    "IQ4_XS": 4.25,
    "MXFP4": 4.25,
    "MXFP4_MOE": 4.25,
    "Q4_0": 4.5,
    "IQ4_NL": 4.5,
    "Q4_K_S": 4.58,
    "Q4_K_M": 4.85,
    "Q4_K_L": 4.9,
    "Q4_K_XL": 4.95,
    "Q4_1": 5.0,
    "Q5_0": 5.5,
    "Q5_K_S": 5.54,
    "Q5_K_M": 5.69,
    "Q5_K_L": 5.75,
    "Q5_K_XL": 5.8,
    "Q5_1": 6.0,
    "Q6_K": 6.56,
    "Q6_K_L": 6.6,
    "Q6_K_XL": 6.7,
    "Q8_0": 8.5,
    "Q8_K_XL": 8.7,
    "F16": 16.0,
    "FP16": 16.0,
    "BF16": 16.0,
    "F32": 32.0,
    "FP32": 32.0,
}


@dataclass(frozen=True)
class HubRef:
    """``OWNER/REPO[:QUANT | /FILE.gguf][@REVISION]``; ``quant`` is stored upper-case."""

    repo_id: str
    quant: str | None = None
    filename: str | None = None
    revision: str | None = None

    def __str__(self) -> str:
        text = self.repo_id
        if self.quant:
            text += f":{self.quant}"
        elif self.filename:
            text += f"/{self.filename}"
        if self.revision:
            text += f"@{self.revision}"
        return text

    def with_quant(self, quant: str) -> HubRef:
        return HubRef(self.repo_id, quant=quant.upper(), revision=self.revision)


@dataclass(frozen=True)
class PathRef:
    """A path to a local ``.gguf`` file, kept as typed (expanded only when resolved)."""

    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class AliasRef:
    """A name given with ``llmcli models alias NAME REF``."""

    name: str

    def __str__(self) -> str:
        return self.name


Ref = HubRef | PathRef | AliasRef


def parse_ref(text: str) -> Ref:
    """Parse a reference; raises :class:`UsageError` (never anything else) when it is malformed."""
    text = text.strip()
    if not text:
        raise UsageError("empty model reference", hint=REF_FORMS_HINT)
    if _looks_like_path(text):
        return PathRef(text)
    if _ALIAS_RE.fullmatch(text):
        return AliasRef(text)
    try:
        ref = _parse_hub_ref(text)
    except UsageError:
        if text.lower().endswith(GGUF_SUFFIX):
            return PathRef(text)  # "my dir/model.gguf": a relative path
        raise
    if ref.filename is None and text.lower().endswith(GGUF_SUFFIX):
        return PathRef(text)  # "models/x.gguf": a relative path, not a repo named x.gguf
    return ref


def is_valid_alias_name(name: str) -> bool:
    """Alias names are single words that cannot be mistaken for a path or a Hub reference."""
    return bool(_ALIAS_RE.fullmatch(name)) and not name.lower().endswith(GGUF_SUFFIX)


def _looks_like_path(text: str) -> bool:
    if text.startswith(("/", "./", "../", "~", "\\", ".\\", "..\\")) or text in (".", ".."):
        return True
    if re.match(r"^[A-Za-z]:[\\/]", text):  # C:\models\x.gguf
        return True
    return "/" not in text and "\\" not in text and text.lower().endswith(GGUF_SUFFIX)


def _parse_hub_ref(text: str) -> HubRef:
    body, at, revision = text.partition("@")
    if at and not _REVISION_RE.fullmatch(revision):
        raise UsageError(f"bad revision in model reference {text!r}", hint=REF_FORMS_HINT)
    body, colon, quant = body.partition(":")
    if colon and not _QUANT_TOKEN_RE.fullmatch(quant):
        raise UsageError(f"bad quant in model reference {text!r}", hint=REF_FORMS_HINT)
    parts = body.split("/")
    if len(parts) < 2 or not all(_is_repo_part(p) for p in parts[:2]):
        raise UsageError(f"not a model reference: {text!r}", hint=REF_FORMS_HINT)
    filename = "/".join(parts[2:]) or None
    if filename is not None:
        if colon:
            raise UsageError(f"give a quant or a file, not both: {text!r}", hint=REF_FORMS_HINT)
        if not _is_gguf_path(filename):
            raise UsageError(f"not a .gguf file in model reference {text!r}", hint=REF_FORMS_HINT)
    return HubRef(
        repo_id="/".join(parts[:2]),
        quant=quant.upper() if colon else None,
        filename=filename,
        revision=revision if at else None,
    )


def _is_repo_part(part: str) -> bool:
    return bool(_NAME_RE.fullmatch(part)) and "--" not in part and ".." not in part


def _is_gguf_path(path: str) -> bool:
    segments = path.split("/")
    return (
        path.lower().endswith(GGUF_SUFFIX)
        and all(_FILE_SEGMENT_RE.fullmatch(s) for s in segments)
        and not any(s in (".", "..") for s in segments)
    )


# ---- GGUF file names -------------------------------------------------------------------


@dataclass(frozen=True)
class SplitPart:
    """``NAME-00002-of-00003.gguf`` → stem ``NAME``, index 2, count 3."""

    stem: str
    index: int
    count: int


def split_part(filename: str) -> SplitPart | None:
    """The split-model position of a file name (llama.cpp's gguf-split naming), or ``None``."""
    match = _SPLIT_RE.match(filename.rsplit("/", 1)[-1])
    if not match:
        return None
    index, count = int(match["index"]), int(match["count"])
    if not 1 <= index <= count:
        return None
    return SplitPart(stem=match["stem"], index=index, count=count)


def model_stem(filename: str) -> str:
    """File name without folders, ``.gguf`` and any ``-0000N-of-0000M`` split suffix."""
    name = filename.rsplit("/", 1)[-1]
    part = split_part(name)
    if part is not None:
        return part.stem
    return name[: -len(GGUF_SUFFIX)] if name.lower().endswith(GGUF_SUFFIX) else name


def quant_of(filename: str) -> str | None:
    """The quant named in a file name (upper-case), e.g. ``Q4_K_M``; the last one wins."""
    matches = _QUANT_IN_NAME_RE.findall(model_stem(filename))
    return matches[-1].upper() if matches else None


def bits_per_weight(quant: str | None) -> float | None:
    """Approximate size of a quant, to find the one nearest to the default."""
    if quant is None:
        return None
    known = _BITS_PER_WEIGHT.get(quant.upper())
    if known is not None:
        return known
    digits = re.search(r"\d+", quant)
    return float(digits.group()) if digits else None


def quant_preference(quant: str | None) -> tuple[float, float]:
    """Sort key: Q4_K_M first, then by distance in size, larger first on ties, unknown last."""
    bits = bits_per_weight(quant)
    target = _BITS_PER_WEIGHT[DEFAULT_QUANT]
    if quant is not None and quant.upper() == DEFAULT_QUANT:
        return (-1.0, 0.0)
    if bits is None:
        return (float("inf"), 0.0)
    return (abs(bits - target), -bits)
