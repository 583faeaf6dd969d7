"""docs/cli.md: generated from every command's ``--help``, current, and stable across terminals."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from llmcli.cli.app import app
from llmcli.cli.cmdtree import command_tree

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "cli.md"
GEN = [sys.executable, str(ROOT / "scripts" / "gen_docs.py")]


def run_gen(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([*GEN, *args], capture_output=True, text=True, env=full_env)


def test_reference_is_current() -> None:
    result = run_gen("--check")
    assert result.returncode == 0, result.stderr


def test_reference_does_not_depend_on_the_terminal() -> None:
    """A wide colour terminal, a narrow one, CI's FORCE_COLOR: the same file."""
    for env in (
        {"COLUMNS": "40", "TERM": "xterm-256color", "FORCE_COLOR": "1"},
        {"COLUMNS": "250", "GITHUB_ACTIONS": "true", "NO_COLOR": "", "LLMCLI_HOME": "/nowhere"},
    ):
        result = run_gen("--check", env=env)
        assert result.returncode == 0, (env, result.stderr)


def test_check_detects_a_stale_reference(tmp_path: Path) -> None:
    stale = tmp_path / "cli.md"
    stale.write_text(DOCS.read_text().replace("Usage: llmcli ask", "Usage: llmcli asks"))
    result = run_gen("--check", "--out", str(stale))
    assert result.returncode == 1 and "stale" in result.stderr
    assert run_gen("--out", str(stale)).returncode == 0
    assert stale.read_text() == DOCS.read_text()


def test_every_visible_command_has_a_section_with_its_help() -> None:
    text = DOCS.read_text()
    sections = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    expected = [" ".join(("llmcli", *c.path)) for c in command_tree(app).walk()]
    assert sections == expected
    for name in expected:
        assert f"Usage: {name} " in text
    assert "## llmcli completion models" not in text  # hidden
    assert "\x1b" not in text


def test_readme_links_the_reference() -> None:
    assert "docs/cli.md" in (ROOT / "README.md").read_text()
