"""A hostile Hub mirror (``HF_ENDPOINT``): what it publishes is data, never a path.

The fake Hub's ``tamper`` hook rewrites the model-info answer the real huggingface_hub
client reads, as a malicious or broken mirror would. Whatever it says, ``pull`` must
refuse with a one-line error (exit 65) and touch nothing outside the store.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hub_server import FakeHub, online_hub, run_llmcli, tiny_gguf

REPO = "acme/tiny-GGUF"
FILE = "tiny-Q4_K_M.gguf"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    with online_hub(monkeypatch, tmp_path) as server:
        server.add_repo(REPO, {FILE: tiny_gguf(tmp_path, "tiny")})
        yield server


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A folder outside the store with files a traversal would hit."""
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "notes").write_text("precious\n")
    (folder / "notes.part").write_text("also precious\n")
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def incomplete(home: Path) -> Path:
    return home / "data" / "models" / ".incomplete"


def sibling(**fields: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A tamper that changes fields of the one file's entry (``lfs_sha256`` goes in lfs)."""

    def tamper(body: dict[str, Any]) -> dict[str, Any]:
        entry = body["siblings"][0]
        for name, value in fields.items():
            if name.startswith("lfs_"):
                entry["lfs"][name.removeprefix("lfs_")] = value
            else:
                entry[name] = value
        return body

    return tamper


def assert_refused(result: Any, victim: Path, before: dict[str, bytes], word: str) -> None:
    assert result.returncode == 65, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert word in result.stderr, result.stderr
    assert snapshot(victim) == before  # nothing read into, written, deleted or created


def test_sha256_that_is_a_path_is_refused_and_nothing_outside_the_store_changes(
    hub: FakeHub, llmcli_home: Path, victim: Path
) -> None:
    incomplete(llmcli_home).mkdir(parents=True)
    traversal = os.path.relpath(victim / "notes", incomplete(llmcli_home))
    hub.tamper[REPO] = sibling(lfs_sha256=traversal)
    before = snapshot(victim)
    result = run_llmcli("pull", REPO)
    assert_refused(result, victim, before, "sha256")
    assert not (victim / "notes.lock").exists()


@pytest.mark.parametrize(
    "sha256",
    ["0" * 63, "0" * 65, "g" * 64, "0" * 62 + "\x00a", ""],
    ids=["short", "long", "not-hex", "nul", "empty"],
)
def test_sha256_must_be_64_hex_chars(hub: FakeHub, victim: Path, sha256: str) -> None:
    hub.tamper[REPO] = sibling(lfs_sha256=sha256)
    before = snapshot(victim)
    assert_refused(run_llmcli("pull", REPO), victim, before, "sha256")


@pytest.mark.parametrize(
    "name",
    [
        "../../evil-Q4_K_M.gguf",
        "/tmp/evil-Q4_K_M.gguf",
        "a/../../evil-Q4_K_M.gguf",
        "evil\x00-Q4_K_M.gguf",
        "a\\..\\evil-Q4_K_M.gguf",
        "a//evil-Q4_K_M.gguf",
    ],
    ids=["dotdot", "absolute", "inner-dotdot", "nul", "backslash", "empty-part"],
)
def test_file_names_that_leave_the_folder_are_refused(
    hub: FakeHub, victim: Path, name: str
) -> None:
    hub.tamper[REPO] = sibling(rfilename=name)
    before = snapshot(victim)
    assert_refused(run_llmcli("pull", REPO), victim, before, "file name")


def test_negative_or_absurd_sizes_are_refused(hub: FakeHub, victim: Path) -> None:
    before = snapshot(victim)
    for size in (-5, 2**70, "12"):
        hub.tamper[REPO] = sibling(size=size, lfs_size=size)
        assert_refused(run_llmcli("pull", REPO), victim, before, "size")


def test_commit_and_repo_id_that_are_paths_are_refused(
    hub: FakeHub, llmcli_home: Path, victim: Path
) -> None:
    before = snapshot(victim)
    store = llmcli_home / "data" / "models"
    escape = os.path.relpath(victim, store)

    def bad_commit(body: dict[str, Any]) -> dict[str, Any]:
        body["sha"] = "../../" + escape
        return body

    def bad_id(body: dict[str, Any]) -> dict[str, Any]:
        body["id"] = escape + "/x"
        return body

    hub.tamper[REPO] = bad_commit
    assert_refused(run_llmcli("pull", REPO), victim, before, "commit")
    hub.tamper[REPO] = bad_id
    assert_refused(run_llmcli("pull", REPO), victim, before, "repository")
    assert snapshot(victim) == before


def test_an_honest_mirror_still_works(hub: FakeHub) -> None:
    result = run_llmcli("pull", REPO)
    assert result.returncode == 0, result.stderr
