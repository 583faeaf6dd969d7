"""Help and usage errors read like a well-kept CLI (issue 17): defaults shown, plain type
names, no validator wording, close suggestions only, the subcommand's own help named."""

from __future__ import annotations

import re

import pytest

from llmcli.cli.app import app, run
from llmcli.cli.cmdtree import command_tree, help_text
from llmcli.errors import ExitStatus
from tests.conftest import run_cli

PYTHON_TYPES = re.compile(r"<(bool|str|int|float|list|file|path|int range|float range)[^>]*>")


def _all_help() -> dict[str, str]:
    return {c.name: help_text(app, c.path) for c in command_tree(app).walk()}


def test_no_help_shows_python_types_or_click_ranges() -> None:
    for name, text in _all_help().items():
        assert not PYTHON_TYPES.search(text), (name, PYTHON_TYPES.search(text))
        assert "x>=" not in text and "<=x" not in text, name


def _flat(text: str) -> str:
    """Help text on one line: no panel borders, wrapped lines joined."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def test_defaults_in_brackets_survive_rich_markup() -> None:
    text = _flat(help_text(app, ("ask",)))
    for shown in ("[default: 0.8]", "[default: 512]", "[default: 0.95]", "[env: LLMCLI_BASE_URL]"):
        assert shown in text, shown
    assert "Sampling temperature (0 or more) [default: 0.8]." in text
    assert "temperature ." not in text  # the "Sampling temperature ."


def test_json_help_says_what_each_command_prints() -> None:
    for path in (("history", "list"), ("history", "rm"), ("prompts", "list")):
        assert "streaming" not in _flat(help_text(app, path)), path


def _usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert run(list(argv)) == ExitStatus.USAGE
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_an_unknown_option_suggests_only_close_names(capsys: pytest.CaptureFixture[str]) -> None:
    line = _usage_error(capsys, "ask", "--bogus", "x")
    assert line == "llmcli: error: no such option: --bogus (see 'llmcli ask --help')"
    line = _usage_error(capsys, "ask", "--temprature", "0.5", "x")
    assert "did you mean --temperature?" in line and "--chat-template" not in line


def test_bad_values_are_said_in_words_and_point_at_the_subcommand(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cases = {
        ("ask", "--ctx", "abc", "x"): "invalid value for --ctx: 'abc' is not a whole number",
        ("ask", "-t", "-1", "x"): "invalid value for --temperature: -1 is out of range "
        "(must be 0 or more)",
        ("ask", "--logprobs", "99", "x"): "99 is out of range (must be from 0 to 20)",
        ("history", "show", "abc"): "invalid value for ID: 'abc' is not a whole number",
        ("models", "rm"): "missing argument REF",
    }
    for argv, expected in cases.items():
        line = _usage_error(capsys, *argv)
        assert expected in line, line
        assert "Input should" not in line and "greater than or equal" not in line
        where = " ".join(a for a in argv[:2] if a.isalpha() and a not in ("abc", "x"))
        assert line.endswith(f"(see 'llmcli {where} --help')"), line


def test_bare_llmcli_prints_the_help_and_no_error() -> None:
    result = run_cli()
    assert result.returncode == 0
    assert b"Usage: llmcli" in result.stdout
    assert b"error" not in result.stderr
    group = run_cli("models")
    assert group.returncode == 0 and b"Usage: llmcli models" in group.stdout


def test_the_real_cli_says_a_usage_error_in_one_line() -> None:
    result = run_cli("ask", "--ctx", "0", "hi")
    assert result.returncode == 2 and result.stdout == b""
    assert result.stderr.decode() == (
        "llmcli: error: invalid value for --ctx: 0 is out of range (must be from 1 to "
        "1073741824) (see 'llmcli ask --help')\n"
    )
