"""``llmcli pull`` against a Hub served on 127.0.0.1, with the real huggingface_hub client.

Every test runs the real CLI in a subprocess with ``HF_ENDPOINT`` pointing at
:class:`tests.hub_server.FakeHub`; the server counts the bytes it serves, so the tests
can tell a download from a store hit. Small synthetic GGUF files keep transfers fast;
one slow test pulls the real 98 MB SmolLM2 file and runs ``ask`` on it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.hub_server import FakeHub, cli_command, online_hub, run_llmcli, split_gguf, tiny_gguf

REPO = "acme/tiny-GGUF"


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("blobs")
    return {name: tiny_gguf(tmp, name) for name in ("q4km", "q8", "f16", "q41", "sub", "v1")}


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    """A running fake Hub, HF_ENDPOINT pointing at it, online, no token from the machine."""
    with online_hub(monkeypatch, tmp_path) as server:
        yield server


@pytest.fixture
def tiny_repo(hub: FakeHub, blobs: dict[str, bytes]) -> FakeHub:
    hub.add_repo(
        REPO,
        {
            "tiny-Q4_K_M.gguf": blobs["q4km"],
            "tiny-Q8_0.gguf": blobs["q8"],
            "tiny-F16.gguf": blobs["f16"],
            "sub/tiny-special.gguf": blobs["sub"],
            "README.md": b"# tiny\n",
        },
    )
    return hub


def models_json() -> list[dict[str, object]]:
    """The pulled models in ``models list --json`` (it lists the bundled model too)."""
    result = run_llmcli("models", "list", "--json")
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    return [entry for entry in entries if entry["source"] == "pulled"]


def store_root(home: Path) -> Path:
    return home / "data" / "models"


# ---- choosing what to pull -----------------------------------------------------------


def test_pull_default_quant(tiny_repo: FakeHub, llmcli_home: Path) -> None:
    result = run_llmcli("pull", REPO)
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path.name == "tiny-Q4_K_M.gguf" and path.is_file()
    assert path.is_relative_to(store_root(llmcli_home))
    assert path.read_bytes() == tiny_repo.file(REPO, "tiny-Q4_K_M.gguf").data
    assert "sha256 verified" in result.stderr
    manifest = json.loads((path.parent / "manifest.json").read_text())
    assert manifest["ref"] == f"{REPO}:Q4_K_M"
    assert manifest["commit"] == tiny_repo.repos[REPO].revisions["main"]
    assert manifest["files"][0]["sha256"] == tiny_repo.file(REPO, "tiny-Q4_K_M.gguf").sha256
    assert manifest["context_length"] == 2048 and manifest["parameters"] > 0
    assert not list((store_root(llmcli_home) / ".incomplete").iterdir())


def test_pull_nearest_quant_says_which(hub: FakeHub, blobs: dict[str, bytes]) -> None:
    hub.add_repo(
        REPO, {"t-Q8_0.gguf": blobs["q8"], "t-Q4_1.gguf": blobs["q41"], "t-F16.gguf": blobs["f16"]}
    )
    result = run_llmcli("pull", REPO)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).name == "t-Q4_1.gguf"
    assert "no Q4_K_M file" in result.stderr and "using Q4_1" in result.stderr


def test_pull_by_quant_is_case_insensitive(tiny_repo: FakeHub) -> None:
    result = run_llmcli("pull", f"{REPO}:q8_0")
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).name == "tiny-Q8_0.gguf"
    assert tiny_repo.served(REPO, "tiny-Q8_0.gguf") == tiny_repo.file(REPO, "tiny-Q8_0.gguf").size
    assert tiny_repo.served(REPO, "tiny-Q4_K_M.gguf") == 0
    assert [m["model"] for m in models_json()] == [f"{REPO}:Q8_0"]


def test_pull_by_file_in_a_folder(tiny_repo: FakeHub) -> None:
    result = run_llmcli("pull", f"{REPO}/sub/tiny-special.gguf")
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path.read_bytes() == tiny_repo.file(REPO, "sub/tiny-special.gguf").data
    (entry,) = models_json()
    assert entry["model"] == f"{REPO}/sub/tiny-special.gguf"
    listed = run_llmcli("models", "path", f"{REPO}/sub/tiny-special.gguf")
    assert listed.stdout.strip() == str(path)


def test_list_shows_quant_size_file(tiny_repo: FakeHub, blobs: dict[str, bytes]) -> None:
    tiny_repo.add_revision(
        REPO, "main", {"tiny-Q4_K_M.gguf": blobs["q4km"], **split_gguf("big-Q8_0", 3)}
    )
    result = run_llmcli("pull", REPO, "--list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("*") and "Q4_K_M" in line and "tiny-Q4_K_M.gguf" in line for line in lines
    )
    (split_line,) = [line for line in lines if "big-Q8_0" in line]
    assert "big-Q8_0-00001-of-00003.gguf (+2 parts)" in split_line and "Q8_0" in split_line
    assert "MiB" in result.stdout or "KiB" in result.stdout
    # Listing reads one GGUF header for the memory estimate (all of a file this small),
    # from one file only: never a model download (tests/test_fit.py checks a large file).
    assert len([n for n in tiny_repo.bytes_served.values() if n]) <= 1
    assert "MEMORY @ctx" in result.stdout


def test_missing_quant_lists_what_exists(tiny_repo: FakeHub) -> None:
    result = run_llmcli("pull", f"{REPO}:Q2_K")
    assert result.returncode == 1, result.stderr
    assert "no Q2_K file" in result.stderr
    assert "tiny-Q8_0.gguf" in result.stderr  # the --list table, on stderr
    assert result.stdout == ""
    assert models_json() == []


def test_split_model_pulls_every_part(hub: FakeHub) -> None:
    parts = split_gguf("big-Q8_0", 3)
    hub.add_repo(REPO, parts)
    result = run_llmcli("pull", f"{REPO}:Q8_0")
    assert result.returncode == 0, result.stderr
    first = Path(result.stdout.strip())
    assert first.name == "big-Q8_0-00001-of-00003.gguf"
    for name, data in parts.items():
        assert (first.parent / name).read_bytes() == data
        assert hub.served(REPO, name) == len(data)
    (entry,) = models_json()
    assert entry["model"] == f"{REPO}:Q8_0"
    assert entry["file_size"] == sum(len(d) for d in parts.values())
    assert len(entry["files"]) == 3  # type: ignore[arg-type]
    assert entry["context_length"] == 4096


def test_revision_suffix(tiny_repo: FakeHub, blobs: dict[str, bytes]) -> None:
    commit = tiny_repo.add_revision(REPO, "v1", {"tiny-Q4_K_M.gguf": blobs["v1"]})
    result = run_llmcli("pull", f"{REPO}@v1")
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path.read_bytes() == blobs["v1"]
    (entry,) = models_json()
    assert entry["revision"] == "v1" and entry["commit"] == commit
    assert entry["model"] == f"{REPO}:Q4_K_M@v1"
    # the default branch is another model; the revision's copy is found by its ref
    assert run_llmcli("models", "path", f"{REPO}@v1").stdout.strip() == str(path)
    assert run_llmcli("models", "path", f"{REPO}:q4_k_m@{commit[:10]}").stdout.strip() == str(path)


def test_second_pull_downloads_nothing(tiny_repo: FakeHub) -> None:
    first = run_llmcli("pull", REPO)
    served = tiny_repo.served(REPO, "tiny-Q4_K_M.gguf")
    second = run_llmcli("pull", REPO)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert "already in the store" in second.stderr
    assert tiny_repo.served(REPO, "tiny-Q4_K_M.gguf") == served


def test_pull_updates_when_the_hub_changes(tiny_repo: FakeHub, blobs: dict[str, bytes]) -> None:
    assert run_llmcli("pull", REPO).returncode == 0
    new_commit = tiny_repo.add_revision(REPO, "main", {"tiny-Q4_K_M.gguf": blobs["v1"]})
    result = run_llmcli("pull", REPO)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).read_bytes() == blobs["v1"]
    (entry,) = models_json()
    assert entry["commit"] == new_commit


# ---- errors from the Hub ---------------------------------------------------------------


def test_missing_repo(hub: FakeHub) -> None:
    result = run_llmcli("pull", "acme/no-such-repo")
    assert result.returncode == 1, result.stderr
    assert "acme/no-such-repo not found" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_gated_repo_names_hf_token(hub: FakeHub, blobs: dict[str, bytes]) -> None:
    hub.add_repo("meta/gated-GGUF", {"g-Q4_K_M.gguf": blobs["q4km"]}, gated=True)
    no_token = run_llmcli("pull", "meta/gated-GGUF")
    assert no_token.returncode == 1
    assert "gated" in no_token.stderr and "HF_TOKEN" in no_token.stderr
    bad_token = run_llmcli("pull", "meta/gated-GGUF", env={"HF_TOKEN": "hf_wrong"})
    assert bad_token.returncode == 1 and "HF_TOKEN" in bad_token.stderr
    assert sum(hub.bytes_served.values()) == 0
    good = run_llmcli("pull", "meta/gated-GGUF", env={"HF_TOKEN": "hf_good_token"})
    assert good.returncode == 0, good.stderr
    assert Path(good.stdout.strip()).read_bytes() == blobs["q4km"]


def test_private_repo_names_hf_token(hub: FakeHub, blobs: dict[str, bytes]) -> None:
    hub.add_repo("acme/private-GGUF", {"p-Q4_K_M.gguf": blobs["q4km"]}, private=True)
    result = run_llmcli("pull", "acme/private-GGUF")
    assert result.returncode == 1, result.stderr
    assert "private" in result.stderr and "HF_TOKEN" in result.stderr
    good = run_llmcli("pull", "acme/private-GGUF", env={"HF_TOKEN": "hf_good_token"})
    assert good.returncode == 0, good.stderr


def test_unknown_revision(tiny_repo: FakeHub) -> None:
    result = run_llmcli("pull", f"{REPO}@nope")
    assert result.returncode == 1, result.stderr
    assert "revision nope not found" in result.stderr


def test_unreachable_hub(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: connection refused
    result = run_llmcli("pull", REPO)
    assert result.returncode == 69, result.stderr
    assert "cannot reach the Hub" in result.stderr


def test_pull_of_a_local_file_is_a_usage_error(hub: FakeHub, tmp_path: Path) -> None:
    result = run_llmcli("pull", str(tmp_path / "x.gguf"))
    assert result.returncode == 2, result.stderr
    assert "nothing to pull" in result.stderr


# ---- offline -------------------------------------------------------------------------


def test_offline_with_the_model_in_the_store(tiny_repo: FakeHub) -> None:
    online = run_llmcli("pull", REPO)
    assert online.returncode == 0, online.stderr
    requests = len(tiny_repo.requests)
    offline = run_llmcli("pull", REPO, env={"HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout == online.stdout
    assert "offline" in offline.stderr
    path = run_llmcli("models", "path", REPO, env={"HF_HUB_OFFLINE": "1"})
    assert path.stdout == online.stdout
    assert len(tiny_repo.requests) == requests  # not one request went out


def test_offline_without_the_model(tiny_repo: FakeHub) -> None:
    result = run_llmcli("pull", REPO, env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 69, result.stderr
    assert "HF_HUB_OFFLINE" in result.stderr
    assert tiny_repo.requests == []


def test_unreachable_hub_falls_back_to_the_store(tiny_repo: FakeHub) -> None:
    online = run_llmcli("pull", REPO)
    result = run_llmcli("pull", REPO, env={"HF_ENDPOINT": "http://127.0.0.1:9"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == online.stdout
    assert "cannot reach the Hub" in result.stderr and "from the store" in result.stderr


def test_ask_with_an_unpulled_hub_ref_names_the_pull_command(hub: FakeHub) -> None:
    result = run_cli("ask", "-m", f"{REPO}:Q8_0", "hello")
    assert result.returncode == 1, result.stderr
    assert f"llmcli pull {REPO}:Q8_0".encode() in result.stderr
    assert hub.requests == []  # resolving never goes to the network


# ---- output ----------------------------------------------------------------------------


def test_pipe_gets_no_progress_bar(tiny_repo: FakeHub) -> None:
    result = run_llmcli("pull", REPO)
    assert "\x1b[" not in result.stderr and "━" not in result.stderr
    assert "downloading tiny-Q4_K_M.gguf" in result.stderr


def test_terminal_gets_a_progress_bar(tiny_repo: FakeHub) -> None:
    pexpect = pytest.importorskip("pexpect")
    argv = cli_command("pull", REPO)
    child = pexpect.spawn(
        argv[0], argv[1:], env=dict(os.environ, TERM="xterm-256color"), timeout=60
    )
    child.expect(pexpect.EOF)
    child.close()
    output = child.before.decode("utf-8", "replace")
    assert child.exitstatus == 0, output
    assert "━" in output  # Rich's bar
    assert "MiB" in output and "tiny-Q4_K_M.gguf" in output


def test_commands_are_registered_in_the_app(hub: FakeHub) -> None:
    """``python -m llmcli`` itself (not our test runner) must know pull and models list."""
    assert run_cli("pull", "--help").returncode == 0
    assert run_cli("models", "list", "--help").returncode == 0


# ---- the real model ----------------------------------------------------------------------


@pytest.mark.slow
def test_pull_real_smollm2_then_ask(hub: FakeHub, model_path: Path) -> None:
    repo = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
    hub.add_repo(
        repo,
        {
            "smollm2-135m-instruct-q4_k_m.gguf": model_path,
            "smollm2-135m-instruct-q8_0.gguf": model_path,
            "smollm2-135m-instruct-f16.gguf": model_path,
        },
    )
    pulled = run_llmcli("pull", repo, timeout=300)
    assert pulled.returncode == 0, pulled.stderr
    path = Path(pulled.stdout.strip())
    assert path.stat().st_size == model_path.stat().st_size
    assert hub.served(repo, "smollm2-135m-instruct-q4_k_m.gguf") == model_path.stat().st_size
    (entry,) = models_json()
    assert entry["parameters"] == 134_515_008 and entry["context_length"] == 8192
    answer = run_cli(
        "ask", "-m", repo, "--max-tokens", "3", "--greedy", "Say hi.", env={"HF_HUB_OFFLINE": "1"}
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip()
