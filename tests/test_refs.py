"""Model references and GGUF file names: parsing, quants, split grouping, the default choice."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmcli.errors import ModelNotFound, UsageError
from llmcli.store.hub import (
    QuantNotFound,
    RemoteFile,
    RepoListing,
    choose_model,
    group_models,
)
from llmcli.store.refs import (
    AliasRef,
    HubRef,
    PathRef,
    is_valid_alias_name,
    model_stem,
    parse_ref,
    quant_of,
    split_part,
)

# ---- parse_ref ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bartowski/SmolLM2-135M-Instruct-GGUF", HubRef("bartowski/SmolLM2-135M-Instruct-GGUF")),
        ("acme/m-GGUF:q8_0", HubRef("acme/m-GGUF", quant="Q8_0")),
        ("acme/m-GGUF:Q4_K_M", HubRef("acme/m-GGUF", quant="Q4_K_M")),
        ("acme/m-GGUF/m.Q4_1.gguf", HubRef("acme/m-GGUF", filename="m.Q4_1.gguf")),
        (
            "acme/m-GGUF/Q8_0/m-00001-of-00002.gguf",
            HubRef("acme/m-GGUF", filename="Q8_0/m-00001-of-00002.gguf"),
        ),
        ("acme/m-GGUF@v1.0", HubRef("acme/m-GGUF", revision="v1.0")),
        (
            "acme/m-GGUF:q5_k_s@refs/pr/3",
            HubRef("acme/m-GGUF", quant="Q5_K_S", revision="refs/pr/3"),
        ),
        ("acme/m/x.gguf@0123abc", HubRef("acme/m", filename="x.gguf", revision="0123abc")),
        ("./model.gguf", PathRef("./model.gguf")),
        ("/abs/model.gguf", PathRef("/abs/model.gguf")),
        ("~/models/x.gguf", PathRef("~/models/x.gguf")),
        ("model.gguf", PathRef("model.gguf")),
        ("models/x.gguf", PathRef("models/x.gguf")),  # two segments: a relative path, not a repo
        ("C:\\models\\x.gguf", PathRef("C:\\models\\x.gguf")),
        ("acme/m:Q4_K_M/x.gguf", PathRef("acme/m:Q4_K_M/x.gguf")),  # not a ref, maybe a file
        ("smol", AliasRef("smol")),
        ("my-model.v2", AliasRef("my-model.v2")),
        ("  acme/m  ", HubRef("acme/m")),
    ],
)
def test_parse_ref_forms(text: str, expected: object) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "acme/",
        "acme/m:",
        "acme/m@",
        "acme/m:Q4 K",
        "acme/m/file.bin",
        "acme/m:Q4_K_M/x",
        "ac me/m",
        "acme/m--x",
        "-acme/m",
        "acme/m@has space",
    ],
)
def test_malformed_references_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_ref(text)


def test_hub_ref_str_is_canonical() -> None:
    assert str(parse_ref("acme/m:q4_k_m@main")) == "acme/m:Q4_K_M@main"
    assert str(HubRef("acme/m", filename="a/b.gguf")) == "acme/m/a/b.gguf"


def test_alias_names() -> None:
    assert is_valid_alias_name("smol")
    assert not is_valid_alias_name("smol.gguf")
    assert not is_valid_alias_name("a/b")
    assert not is_valid_alias_name("a:b")
    assert not is_valid_alias_name("")


_name = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9_]|[._-][A-Za-z0-9_]){0,10}", fullmatch=True)
_quant = st.sampled_from(["Q4_K_M", "Q8_0", "IQ3_XXS", "F16", "BF16", "Q4_0_4_4", "X1"])
_segment = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,12}", fullmatch=True).filter(
    lambda s: s not in (".", "..")
)
_revision = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._/-]{0,20}", fullmatch=True)


@st.composite
def hub_refs(draw: st.DrawFn) -> HubRef:
    repo = f"{draw(_name)}/{draw(_name)}"
    kind = draw(st.sampled_from(["repo", "quant", "file"]))
    quant = draw(_quant) if kind == "quant" else None
    filename = None
    if kind == "file":
        folders = draw(st.lists(_segment, max_size=2))
        filename = "/".join([*folders, draw(_segment) + draw(st.sampled_from([".gguf", ".GGUF"]))])
    revision = draw(st.none() | _revision)
    return HubRef(repo, quant=quant, filename=filename, revision=revision)


@given(hub_refs())
def test_hub_refs_round_trip(ref: HubRef) -> None:
    assert parse_ref(str(ref)) == ref


@given(st.text(max_size=80))
def test_parse_never_crashes(text: str) -> None:
    """Any input either parses (and re-parses to the same thing) or is a UsageError."""
    try:
        ref = parse_ref(text)
    except UsageError:
        return
    assert parse_ref(str(ref)) == ref


# ---- file names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("SmolLM2-135M-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1"),
        ("qwen2.5-0.5b-instruct-q4_k_m.gguf", "Q4_K_M"),
        ("llama-2-7b.Q5_K_S.gguf", "Q5_K_S"),
        ("Phi-3-mini-4k-instruct-q4.gguf", "Q4"),
        ("model-IQ3_XXS.gguf", "IQ3_XXS"),
        ("model-iq4_nl.gguf", "IQ4_NL"),
        ("model-Q4_0_4_4.gguf", "Q4_0_4_4"),
        ("model-UD-Q4_K_XL.gguf", "Q4_K_XL"),
        ("model-bf16.gguf", "BF16"),
        ("model-f16-00001-of-00002.gguf", "F16"),
        ("Q8_0/model-Q8_0-00002-of-00003.gguf", "Q8_0"),
        ("Qwen2-7B.gguf", None),
        ("model.gguf", None),
    ],
)
def test_quant_of(name: str, quant: str | None) -> None:
    assert quant_of(name) == quant


def test_split_part_and_stem() -> None:
    part = split_part("dir/model-Q8_0-00002-of-00003.gguf")
    assert part is not None and (part.stem, part.index, part.count) == ("model-Q8_0", 2, 3)
    assert split_part("model-00004-of-00003.gguf") is None
    assert split_part("model.gguf") is None
    assert model_stem("dir/model-Q8_0-00002-of-00003.gguf") == "model-Q8_0"
    assert model_stem("m.Q4_1.gguf") == "m.Q4_1"


# ---- grouping and the default quant ------------------------------------------------------


def _listing(*names: str) -> RepoListing:
    files = [RemoteFile(path=n, size=10 * (i + 1), sha256=f"{i:064x}") for i, n in enumerate(names)]
    return RepoListing(repo_id="acme/m", revision=None, commit="c" * 40, models=group_models(files))


def test_split_parts_group_into_one_model() -> None:
    listing = _listing(
        "m-Q8_0-00002-of-00003.gguf",
        "m-Q8_0-00001-of-00003.gguf",
        "m-Q8_0-00003-of-00003.gguf",
        "m-Q4_K_M.gguf",
        "README.md",
    )
    assert len(listing.models) == 2
    split = next(m for m in listing.models if m.quant == "Q8_0")
    assert [f.name for f in split.files] == [f"m-Q8_0-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert split.size == 20 + 10 + 30 and split.complete
    assert split.label == "m-Q8_0-00001-of-00003.gguf (+2 parts)"


def test_default_is_q4_k_m() -> None:
    listing = _listing("m-Q8_0.gguf", "m-Q4_K_M.gguf", "m-F16.gguf")
    choice = choose_model(listing, HubRef("acme/m"))
    assert choice.model.quant == "Q4_K_M" and choice.note is None


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (("m-Q8_0.gguf", "m-Q4_1.gguf", "m-F16.gguf"), "Q4_1"),
        (("m-Q8_0.gguf", "m-F16.gguf"), "Q8_0"),
        (("m-Q4_K_S.gguf", "m-Q5_K_M.gguf", "m-Q2_K.gguf"), "Q4_K_S"),
        (("m-Q5_K_M.gguf", "m-Q3_K_M.gguf"), "Q5_K_M"),
        (("m-F16.gguf", "mmproj-m-Q4_K_M.gguf"), "F16"),  # projectors are never the default
    ],
)
def test_nearest_quant_when_q4_k_m_is_missing(names: tuple[str, ...], expected: str) -> None:
    choice = choose_model(_listing(*names), HubRef("acme/m"))
    assert choice.model.quant == expected
    assert choice.note is not None and expected in choice.note and "Q4_K_M" in choice.note


def test_quant_and_file_choice() -> None:
    listing = _listing("m-Q8_0.gguf", "m-Q4_K_M.gguf", "sub/other.gguf")
    assert choose_model(listing, HubRef("acme/m", quant="Q8_0")).model.first.path == "m-Q8_0.gguf"
    assert (
        choose_model(listing, HubRef("acme/m", filename="sub/other.gguf")).model.first.path
        == "sub/other.gguf"
    )
    with pytest.raises(QuantNotFound, match="no Q2_K") as info:
        choose_model(listing, HubRef("acme/m", quant="Q2_K"))
    assert "Q4_K_M" in str(info.value) and "Q8_0" in str(info.value)
    with pytest.raises(QuantNotFound, match="no file nope.gguf"):
        choose_model(listing, HubRef("acme/m", filename="nope.gguf"))


def test_incomplete_split_upload_is_refused() -> None:
    listing = _listing("m-Q8_0-00001-of-00003.gguf", "m-Q8_0-00002-of-00003.gguf")
    with pytest.raises(ModelNotFound, match="only 2 of the 3 parts"):
        choose_model(listing, HubRef("acme/m", quant="Q8_0"))
    with pytest.raises(QuantNotFound):  # and never chosen by default
        choose_model(listing, HubRef("acme/m"))


def test_ambiguous_quant_asks_for_the_file() -> None:
    listing = _listing("a-Q8_0.gguf", "b-Q8_0.gguf")
    with pytest.raises(UsageError, match="several files"):
        choose_model(listing, HubRef("acme/m", quant="Q8_0"))
