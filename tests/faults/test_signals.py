"""Pipes and signals: ``| head`` ends quietly, and Ctrl-C or SIGTERM is never lost.

Wherever the signal lands — Python still importing, llama.cpp loading the model,
the probe child, a long prompt evaluation, the answer streaming — llmcli stops,
keeps what it had shown or saved, prints no traceback, and exits 130 (SIGINT) or
143 (SIGTERM). A closed pipe ends the process quietly with 141 (128 + SIGPIPE).

The moment a signal is sent is chosen by what the process is doing (its output,
its CPU time, an import hook), never by sleeping a guessed time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from llmcli.engine import probe
from llmcli.errors import DataError, TemporaryFailure, Terminated
from tests.conftest import run_cli

PYTHON = sys.executable
SIGPIPE_STATUS = 128 + signal.SIGPIPE


# ---- `llmcli … | head -1` ------------------------------------------------------------------


def _status_into_head(args: str, tmp_path: Path, stdin: str = "/dev/null") -> tuple[int, bytes]:
    """Run ``llmcli ARGS | head -1`` in bash; llmcli's own exit status and its stderr."""
    err = tmp_path / "stderr"
    command = (
        f"{PYTHON} -m llmcli {args} <{stdin} 2>{err} | head -1 >/dev/null; "
        'echo "${PIPESTATUS[0]}"'
    )
    done = subprocess.run(["bash", "-c", command], capture_output=True, timeout=300)
    return int(done.stdout.decode().strip()), err.read_bytes()


@pytest.mark.parametrize(
    "flags",
    ["", "--plain", "--stats", "--show-probs"],
    ids=["default", "plain", "stats", "show-probs"],
)
def test_ask_into_head_exits_141_quietly(tmp_path: Path, flags: str) -> None:
    """Typer turns a broken pipe into ``sys.exit(1)``; llmcli reports 141 and prints nothing."""
    args = f"ask --greedy -n 80 {flags} 'List ten fruits, one per line.'"
    status, err = _status_into_head(args, tmp_path)
    assert status == SIGPIPE_STATUS, err
    assert err == b""


def test_raw_completion_into_head(tmp_path: Path) -> None:
    numbers = tmp_path / "numbers"
    numbers.write_text("1\n2\n3\n4\n")
    status, err = _status_into_head("ask --raw --greedy -n 60", tmp_path, stdin=str(numbers))
    assert status == SIGPIPE_STATUS, err
    assert err == b""


def test_tokenize_into_head(tmp_path: Path) -> None:
    """~20,000 rows: far more than a pipe buffer holds, so the writes meet the closed pipe."""
    text = tmp_path / "text"
    text.write_text("hello world " * 10_000)
    status, err = _status_into_head("tokenize", tmp_path, stdin=str(text))
    assert status == SIGPIPE_STATUS, err
    assert err == b""


def test_chat_into_head(tmp_path: Path) -> None:
    lines = tmp_path / "messages"
    lines.write_text("List ten fruits, one per line.\nAnd ten vegetables.\n")
    status, err = _status_into_head("chat -q --greedy -n 80", tmp_path, stdin=str(lines))
    assert status == SIGPIPE_STATUS, err
    assert err == b""


# ---- Ctrl-C while Python is still importing -------------------------------------------------

_IMPORT_INTERRUPTED = """
import importlib.abc, runpy, sys

class CtrlC(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == {module!r}:
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, CtrlC())
sys.argv = ["llmcli", "--help"]
if {console_script!r}:
    from llmcli.cli.entry import main
    main()
else:
    runpy.run_module("llmcli", run_name="__main__")
"""


@pytest.mark.parametrize("module", ["typer", "llmcli.cli.ask", "llmcli.cli.models_show"])
@pytest.mark.parametrize("console_script", [True, False], ids=["llmcli", "python-m-llmcli"])
def test_ctrl_c_during_start_up_imports(module: str, console_script: bool) -> None:
    """Ctrl-C pressed right after Enter lands in an import: no traceback, exit 130."""
    code = _IMPORT_INTERRUPTED.format(module=module, console_script=console_script)
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, timeout=60)
    assert done.returncode == 130, done.stderr
    assert done.stderr == b""


# ---- a signal during the model load ----------------------------------------------------------


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated("terminated")


@pytest.fixture
def cli_handlers() -> Iterator[None]:
    """The handlers ``llmcli.cli.app.main`` runs with: SIGINT → KeyboardInterrupt, SIGTERM →
    Terminated."""
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    old_term = signal.signal(signal.SIGTERM, _raise_terminated)
    yield
    signal.signal(signal.SIGINT, old_int)
    signal.signal(signal.SIGTERM, old_term)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "expected"), [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)]
)
def test_a_signal_during_model_load_is_never_lost(
    model_path: Path, cli_handlers: None, sig: int, expected: type[BaseException]
) -> None:
    """llama.cpp logs through a Python ctypes callback; an exception raised there by a
    signal handler is dropped ("Exception ignored on calling ctypes callback"), so before
    the fix most Ctrl-Cs during a load vanished. Signals sent at spread-out moments of
    the load must each stop it (during the load, or the moment it returns)."""
    from llmcli.engine.base import LoadOptions
    from llmcli.engine.llama import LlamaEngine

    options = LoadOptions(n_ctx=256, threads=1)
    started = time.perf_counter()
    LlamaEngine(model_path, options).close()
    load_s = time.perf_counter() - started
    for step in range(8):
        timer = threading.Timer(load_s * (step + 0.5) / 8, os.kill, (os.getpid(), sig))
        with pytest.raises(expected):
            try:
                timer.start()
                LlamaEngine(model_path, options).close()
            finally:
                timer.join()
                for _ in range(100):  # a signal that arrived after the load lands here
                    time.sleep(0.001)


# ---- the probe child is interrupted ---------------------------------------------------------


def _tiny(tmp_path: Path) -> Path:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 64)
    return model


REFUSING = "import sys; print('the loader refused it: bad', file=sys.stderr); sys.exit(3)"


def _killed_by(sig: int) -> list[str]:
    return [PYTHON, "-c", f"import os; os.kill(os.getpid(), {int(sig)})"]


def test_ctrl_c_in_the_probe_child_stops_and_remembers_nothing(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group: the child dying of SIGINT is not the file's
    fault, so no verdict is kept and llmcli stops as for any Ctrl-C."""
    model = _tiny(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        probe.ensure_loadable(model, command=_killed_by(signal.SIGINT))
    with pytest.raises(Terminated):
        probe.ensure_loadable(model, command=_killed_by(signal.SIGTERM))
    assert not probe.verdict_file().exists()
    probe.ensure_loadable(model, command=[PYTHON, "-c", "pass"])  # probed again, passes


def test_a_killed_probe_is_reported_but_not_remembered(tmp_path: Path) -> None:
    """The OOM killer's SIGKILL says nothing lasting about the file: a memory failure (75)."""
    model = _tiny(tmp_path)
    with pytest.raises(TemporaryFailure, match="killed \\(SIGKILL") as info:
        probe.ensure_loadable(model, command=_killed_by(signal.SIGKILL))
    assert "try again" in (info.value.hint or "")
    probe.ensure_loadable(model, command=[PYTHON, "-c", "pass"])


def test_a_probe_that_fails_for_another_reason_is_not_remembered(tmp_path: Path) -> None:
    """Only llama.cpp refusing the file (exit 3) or crashing on it is a verdict; a broken
    install is not, or the file would stay refused after the install is fixed."""
    model = _tiny(tmp_path)
    broken = [PYTHON, "-c", "raise SystemExit('ModuleNotFoundError: llama_cpp')"]
    with pytest.raises(DataError, match="ModuleNotFoundError"):
        probe.ensure_loadable(model, command=broken)
    probe.ensure_loadable(model, command=[PYTHON, "-c", "pass"])
    refused = tmp_path / "refused.gguf"
    refused.write_bytes(b"GGUF" + b"\1" * 64)
    with pytest.raises(DataError, match="refused"):
        probe.ensure_loadable(refused, command=[PYTHON, "-c", REFUSING])
    with pytest.raises(DataError, match="refused"):  # remembered: this child would pass
        probe.ensure_loadable(refused, command=[PYTHON, "-c", "pass"])


def test_ctrl_c_to_the_process_group_during_the_probe(tmp_path: Path) -> None:
    """As a terminal sends it: to llmcli and its probe child at once, while the child runs."""
    slow = tmp_path / "slow_probe.py"
    started = tmp_path / "probe-started"
    slow.write_text(
        f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\ntime.sleep(60)\n"
    )
    code = (
        "import sys\nfrom pathlib import Path\nfrom llmcli.engine import probe\n"
        f"probe._child_command = lambda path: [sys.executable, {str(slow)!r}]\n"
        f"probe.ensure_loadable(Path({str(_tiny(tmp_path))!r}))\n"
    )
    proc = subprocess.Popen(
        [PYTHON, "-c", code], stderr=subprocess.PIPE, start_new_session=True, env=dict(os.environ)
    )
    _wait_until(started.exists, "the probe child to start")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and b"KeyboardInterrupt" in err
    assert not probe.verdict_file().exists()


# ---- a long prompt evaluation ---------------------------------------------------------------

LONG_CTX = "4096"


def _long_input(tmp_path: Path) -> Path:
    """~3,300 tokens of text: evaluating it takes tens of CPU-seconds on 2 cores."""
    words = "the river flows past ancient stones where children play and merchants sell bread"
    vocabulary = words.split()
    text = " ".join(vocabulary[(i * 7 + i // 13) % len(vocabulary)] for i in range(3300))
    path = tmp_path / "long.txt"
    path.write_text(text + "\n")
    return path


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_until(condition: Callable[[], bool], what: str, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _interrupt_prompt_evaluation(tmp_path: Path, sig: int, *extra: str) -> tuple[int, bytes, bytes]:
    """Start ``ask`` on the long input; signal it once it has burnt 4 CPU-seconds, far more
    than start-up and loading take (~1.5 s) and far less than the evaluation (~40 s)."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to see the process's CPU time")
    warm = run_cli("ask", "-n", "1", "hi")  # the probe verdict is cached: no child below
    assert warm.returncode == 0, warm.stderr
    with _long_input(tmp_path).open("rb") as stdin:
        proc = subprocess.Popen(
            [PYTHON, "-m", "llmcli", "ask", "--ctx", LONG_CTX, "-n", "5", *extra, "summarise"],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _wait_until(lambda: proc.poll() is not None or _cpu_seconds(proc.pid) >= 4, "4 CPU-s")
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err and b"Exception ignored" not in err, err
    return proc.returncode, out, err


def _assert_stopped_inside_the_prompt(out: bytes) -> None:
    """No token was sampled: the evaluation itself was aborted, not waited for."""
    answer = json.loads(out)
    stats = answer["stats"]
    assert stats["prompt_tokens"] > 3000
    assert stats["generated_tokens"] == 0 and stats["ttft_s"] == 0
    assert answer["finish_reason"] == "interrupted"


@pytest.mark.slow
def test_ctrl_c_during_a_long_prompt_evaluation(tmp_path: Path) -> None:
    status, out, err = _interrupt_prompt_evaluation(tmp_path, signal.SIGINT, "--json")
    assert status == 130, err
    _assert_stopped_inside_the_prompt(out)


@pytest.mark.slow
def test_sigterm_during_a_long_prompt_evaluation(tmp_path: Path) -> None:
    status, out, err = _interrupt_prompt_evaluation(tmp_path, signal.SIGTERM, "--json")
    assert status == 143, err
    _assert_stopped_inside_the_prompt(out)


# ---- SIGTERM keeps what Ctrl-C keeps ---------------------------------------------------------

STORY = "Write a very long story about a dragon."


def _history(conversation: int = 1) -> Any:
    shown = run_cli("history", "show", str(conversation), "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def _signal_after_first_output(proc: subprocess.Popen[bytes], sig: int) -> tuple[bytes, bytes]:
    assert proc.stdout is not None
    first = proc.stdout.read(20)  # the answer is streaming
    proc.send_signal(sig)
    rest, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err, err
    return first + rest, err


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ask_continue_saves_the_partial_answer(sig: int, status: int) -> None:
    first = run_cli("ask", "-c", "--greedy", "-n", "3", "Hello")
    assert first.returncode == 0, first.stderr
    proc = subprocess.Popen(
        [PYTHON, "-m", "llmcli", "ask", "-c", "-n", "2000", "-t", "1", STORY],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, _ = _signal_after_first_output(proc, sig)
    assert proc.returncode == status
    messages = _history()["messages"]
    assert len(messages) == 4
    user, answer = messages[2], messages[3]
    assert user["content"] == STORY
    assert answer["interrupted"] is True
    assert answer["stats"]["finish_reason"] == "interrupted"  # final stats, not a snapshot
    assert out.startswith(answer["content"].encode()[:20])


def test_sigterm_ends_a_chat_instead_of_only_its_answer(tmp_path: Path) -> None:
    """The chat loop reports errors and goes on; SIGTERM is not an error and must end it."""
    messages = tmp_path / "messages"
    messages.write_text(f"{STORY}\nSay the word banana.\n")
    with messages.open("rb") as stdin:
        proc = subprocess.Popen(
            [PYTHON, "-m", "llmcli", "chat", "-q", "-n", "300", "-t", "1"],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    _, err = _signal_after_first_output(proc, signal.SIGTERM)
    assert proc.returncode == 143, err
    contents = [m["content"] for m in _history()["messages"]]
    assert contents[0] == STORY
    assert "Say the word banana." not in contents
