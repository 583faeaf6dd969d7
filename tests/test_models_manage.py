"""``llmcli models list | rm | path | alias`` on a store filled by real pulls from the fake Hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hub_server import FakeHub, cli_command, online_hub, run_llmcli, tiny_gguf

REPO = "acme/tiny-GGUF"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    with online_hub(monkeypatch, tmp_path) as server:
        server.add_repo(
            REPO,
            {
                "tiny-Q4_K_M.gguf": tiny_gguf(tmp_path, "a"),
                "tiny-Q8_0.gguf": tiny_gguf(tmp_path, "b"),
            },
        )
        yield server


@pytest.fixture
def pulled(hub: FakeHub) -> dict[str, Path]:
    """Both quants pulled; ``{ref: path}``."""
    paths = {}
    for ref in (f"{REPO}:Q4_K_M", f"{REPO}:Q8_0"):
        result = run_llmcli("pull", ref)
        assert result.returncode == 0, result.stderr
        paths[ref] = Path(result.stdout.strip())
    return paths


def everything() -> list[dict[str, object]]:
    result = run_llmcli("models", "list", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return,unused-ignore]


def listed() -> list[dict[str, object]]:
    """The pulled models only (the list also holds the bundled model and alias targets)."""
    return [entry for entry in everything() if entry["source"] == "pulled"]


# ---- list --------------------------------------------------------------------------------


def test_list_empty_store_shows_the_bundled_model_and_alias_targets(
    model_path: Path, tmp_path: Path
) -> None:
    result = run_llmcli("models", "list")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split()[:2] == ["NAME", "SOURCE"]
    assert [row.split()[:2] for row in rows] == [[model_path.stem, "bundled"]]
    assert listed() == []

    run_llmcli("models", "alias", "tiny", str(model_path))
    run_llmcli("models", "alias", "later", "acme/other-GGUF:Q8_0")
    run_llmcli("models", "alias", "gone", str(tmp_path / "gone.gguf"))
    entries = {str(e["model"]): e for e in everything()}
    assert entries[model_path.stem]["source"] == "bundled"
    assert entries[model_path.stem]["aliases"] == ["tiny"]  # the same file: one row
    assert entries[model_path.stem]["context_length"] == 8192
    assert entries["acme/other-GGUF:Q8_0"]["source"] == "not pulled"
    assert entries["acme/other-GGUF:Q8_0"]["aliases"] == ["later"]
    assert entries[str(tmp_path / "gone.gguf")]["source"] == "missing"
    text = run_llmcli("models", "list").stdout
    assert "not pulled" in text and "later" in text and "missing" in text


def test_list_shows_name_quant_size_params_context(pulled: dict[str, Path]) -> None:
    result = run_llmcli("models", "list")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAME", "SOURCE", "QUANT", "SIZE", "PARAMS", "CONTEXT", "ALIASES"]
    pulled_rows = [row for row in rows if row.split()[1] == "pulled"]
    assert [row.split()[0] for row in pulled_rows] == sorted(pulled)
    assert all("2048" in row and "MiB" in row for row in pulled_rows)
    entries = listed()
    assert {e["model"] for e in entries} == set(pulled)
    for entry in entries:
        assert entry["path"] == str(pulled[str(entry["model"])])
        assert entry["context_length"] == 2048
        assert isinstance(entry["parameters"], int) and entry["parameters"] > 0
        assert entry["file_size"] == pulled[str(entry["model"])].stat().st_size


def test_list_imports_neither_llama_cpp_nor_huggingface_hub(pulled: dict[str, Path]) -> None:
    probe = (
        "import sys, llmcli.cli.models_manage, llmcli.cli.pull\n"
        "from llmcli.cli.app import run\n"
        "status = run(['models', 'list'])\n"
        "print(status, 'llama_cpp' in sys.modules, 'huggingface_hub' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=dict(os.environ)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "0 False False"


def test_corrupted_manifest_is_named_and_skipped(hub: FakeHub, pulled: dict[str, Path]) -> None:
    broken = pulled[f"{REPO}:Q8_0"].parent / "manifest.json"
    broken.write_text('{"schema": 1, "ref": ')
    result = run_llmcli("models", "list")
    assert result.returncode == 0, result.stderr
    assert str(broken) in result.stderr and "corrupted manifest" in result.stderr
    assert f"{REPO}:Q4_K_M" in result.stdout and f"{REPO}:Q8_0" not in result.stdout
    assert [e["model"] for e in listed()] == [f"{REPO}:Q4_K_M"]
    # using it names the file, exit 65; the healthy one still works
    path = run_llmcli("models", "path", f"{REPO}:Q8_0")
    assert path.returncode == 65 and str(broken) in path.stderr
    assert run_llmcli("models", "path", f"{REPO}:Q4_K_M").returncode == 0
    # pulling again repairs it without downloading the (intact) file again
    served = hub.served(REPO, "tiny-Q8_0.gguf")
    repaired = run_llmcli("pull", f"{REPO}:Q8_0")
    assert repaired.returncode == 0, repaired.stderr
    assert hub.served(REPO, "tiny-Q8_0.gguf") == served
    assert len(listed()) == 2


def test_corrupted_alias_file_warns(pulled: dict[str, Path], llmcli_home: Path) -> None:
    (llmcli_home / "data" / "models" / "aliases.json").write_text("[not json")
    result = run_llmcli("models", "list")
    assert result.returncode == 0, result.stderr
    # the header, two pulled models, the bundled one
    assert "aliases.json" in result.stderr and len(result.stdout.splitlines()) == 4


# ---- rm ----------------------------------------------------------------------------------


def test_rm_in_a_pipe_needs_yes(pulled: dict[str, Path]) -> None:
    result = run_llmcli("models", "rm", f"{REPO}:Q8_0")
    assert result.returncode == 2, result.stderr
    assert "--yes" in result.stderr
    assert pulled[f"{REPO}:Q8_0"].is_file()


def test_rm_yes_removes(pulled: dict[str, Path]) -> None:
    result = run_llmcli("models", "rm", f"{REPO}:q8_0", "--yes")
    assert result.returncode == 0, result.stderr
    assert "removed" in result.stderr
    assert not pulled[f"{REPO}:Q8_0"].parent.exists()
    assert [e["model"] for e in listed()] == [f"{REPO}:Q4_K_M"]
    again = run_llmcli("models", "rm", f"{REPO}:Q8_0", "--yes")
    assert again.returncode == 1 and "not in the store" in again.stderr


def test_rm_of_an_ambiguous_repo_ref_is_refused(pulled: dict[str, Path]) -> None:
    result = run_llmcli("models", "rm", REPO, "--yes")
    assert result.returncode == 2, result.stderr
    assert "several models" in result.stderr
    assert len(listed()) == 2


def test_rm_asks_in_a_terminal(pulled: dict[str, Path]) -> None:
    pexpect = pytest.importorskip("pexpect")
    argv = cli_command("models", "rm", f"{REPO}:Q8_0")
    child = pexpect.spawn(argv[0], argv[1:], env=dict(os.environ), timeout=30)
    child.expect(r"Remove acme/tiny-GGUF:Q8_0 .*\?")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert pulled[f"{REPO}:Q8_0"].is_file()
    child = pexpect.spawn(argv[0], argv[1:], env=dict(os.environ), timeout=30)
    child.expect(r"\?")
    child.sendline("y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert not pulled[f"{REPO}:Q8_0"].exists()


# ---- path and alias ----------------------------------------------------------------------


def test_path(pulled: dict[str, Path], llmcli_home: Path, model_path: Path) -> None:
    root = run_llmcli("models", "path")
    assert root.stdout.strip() == str(llmcli_home / "data" / "models")
    default = run_llmcli("models", "path", REPO)  # several quants: Q4_K_M is the default
    assert default.stdout.strip() == str(pulled[f"{REPO}:Q4_K_M"])
    local = run_llmcli("models", "path", str(model_path))
    assert local.stdout.strip() == str(model_path)
    missing = run_llmcli("models", "path", "acme/other-GGUF")
    assert missing.returncode == 1 and "llmcli pull acme/other-GGUF" in missing.stderr


def test_alias_to_a_hub_ref_and_a_file(
    pulled: dict[str, Path], model_path: Path, tmp_path: Path
) -> None:
    made = run_llmcli("models", "alias", "smol", f"{REPO}:q8_0")
    assert made.returncode == 0, made.stderr
    assert run_llmcli("models", "path", "smol").stdout.strip() == str(pulled[f"{REPO}:Q8_0"])
    (entry,) = [e for e in listed() if e["model"] == f"{REPO}:Q8_0"]
    assert entry["aliases"] == ["smol"]
    assert "smol" in run_llmcli("models", "list").stdout

    os.symlink(model_path, tmp_path / "link.gguf")
    run_llmcli("models", "alias", "local", str(tmp_path / "link.gguf"))
    stored = run_llmcli("models", "alias", "local").stdout.strip()
    assert Path(stored).is_absolute()
    assert Path(run_llmcli("models", "path", "local").stdout.strip()).samefile(model_path)

    everything = run_llmcli("models", "alias").stdout
    assert f"smol\t{REPO}:Q8_0" in everything and "local\t" in everything
    assert run_llmcli("models", "alias", "smol", "--remove").returncode == 0
    gone = run_llmcli("models", "path", "smol")
    assert gone.returncode == 1 and "smol" in gone.stderr


def test_alias_to_an_unpulled_model_names_the_pull(hub: FakeHub) -> None:
    made = run_llmcli("models", "alias", "later", "acme/other-GGUF:Q8_0")
    assert made.returncode == 0 and "not pulled yet" in made.stderr
    result = run_llmcli("models", "path", "later")
    assert result.returncode == 1 and "llmcli pull acme/other-GGUF:Q8_0" in result.stderr


def test_pull_through_an_alias(hub: FakeHub) -> None:
    assert run_llmcli("models", "alias", "tiny8", f"{REPO}:Q8_0").returncode == 0
    result = run_llmcli("pull", "tiny8")
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).name == "tiny-Q8_0.gguf"


@pytest.mark.parametrize("name", ["a/b", "x.gguf", "a:b", "@x"])
def test_bad_alias_names(name: str) -> None:
    result = run_llmcli("models", "alias", name, "acme/m")
    assert result.returncode == 2, result.stderr
