"""Damaged and foreign model files, as a user meets them: through the CLI.

Every command that takes a model refuses a damaged file with llmcli's own header
check — one line naming the file and the problem, exit 65 — before llama.cpp (or
the probe child that loads it) ever sees the file. A file that passes the check
but makes llama.cpp abort is caught by the probe child; a chat that switches to
it reports the error and goes on, its history and transcript intact.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from llmcli.engine import probe
from tests import gguf_factory as gf
from tests.conftest import run_cli
from tests.faults.tiny_models import aborting_llama

# Runs the CLI like `python -m llmcli`, then says whether llama_cpp was ever imported.
RUN_AND_REPORT = (
    "import sys\n"
    "from llmcli.cli.app import run\n"
    "status = run(sys.argv[1:])\n"
    "print('imported llama_cpp' if 'llama_cpp' in sys.modules else 'never imported llama_cpp',"
    " file=sys.stderr)\n"
    "sys.exit(status)\n"
)


def _not_gguf(tmp_path: Path, model: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    return path


def _version(version: int) -> Callable[[Path, Path], Path]:
    def build(tmp_path: Path, model: Path) -> Path:
        path = tmp_path / f"v{version}.gguf"
        path.write_bytes(gf.header(0, 0, version=version) + b"\0" * 64)
        return path

    return build


def _truncated(tmp_path: Path, model: Path) -> Path:
    path = tmp_path / "cut.gguf"
    with model.open("rb") as whole:
        path.write_bytes(whole.read(1024 * 1024))
    return path


def _absurd_count(tmp_path: Path, model: Path) -> Path:
    path = tmp_path / "count.gguf"
    path.write_bytes(gf.header(2**62, 0) + b"\0" * 64)
    return path


def _data_outside(tmp_path: Path, model: Path) -> Path:
    path = tmp_path / "outside.gguf"
    head = gf.header(1, 0) + gf.tensor_info("w", (64, 64), gf.F32, 2**40)
    path.write_bytes(head + b"\0" * (64 * 64 * 4 + 64))
    return path


TRUNCATED = "truncated|more than the file can hold"
DAMAGED = {
    "not GGUF": (_not_gguf, "is not a GGUF file"),
    "GGUF version 1": (_version(1), "GGUF version 1 is not supported"),
    "GGUF version 4": (_version(4), "GGUF version 4 is not supported"),
    "truncated": (_truncated, TRUNCATED),
    "absurd tensor count": (_absurd_count, "tensor count .* is absurd"),
    "tensor data outside the file": (_data_outside, "data ends at byte"),
}


def _refused(*args: str, path: Path, problem: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_REPORT, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
    )
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 65, done.stderr
    assert len(lines) == 2 and lines[1] == "never imported llama_cpp", lines
    assert lines[0].startswith("llmcli: error: ") and str(path) in lines[0]
    assert re.search(problem, lines[0]), lines[0]
    assert not probe.verdict_file().exists()  # the probe child never ran either


@pytest.mark.parametrize("damage", sorted(DAMAGED))
def test_ask_refuses_a_damaged_file_before_llama_cpp(
    tmp_path: Path, model_path: Path, damage: str
) -> None:
    build, problem = DAMAGED[damage]
    path = build(tmp_path, model_path)
    _refused("ask", "-m", str(path), "hi", path=path, problem=problem)


@pytest.mark.parametrize(
    "command",
    [
        ["chat", "-m", "{path}"],
        ["tokenize", "-m", "{path}", "hello"],
        ["next", "-m", "{path}", "hello"],
        ["models", "show", "{path}"],
    ],
    ids=lambda command: " ".join(command[:2]) if command[0] == "models" else command[0],
)
def test_every_model_command_refuses_it(
    tmp_path: Path, model_path: Path, command: list[str]
) -> None:
    path = _truncated(tmp_path, model_path)
    _refused(*(arg.format(path=path) for arg in command), path=path, problem=TRUNCATED)


def test_a_file_that_aborts_llama_cpp_is_an_error_not_a_crash(tmp_path: Path) -> None:
    bad = aborting_llama(tmp_path / "experts.gguf")
    for _ in range(2):  # the second time from the remembered verdict
        result = run_cli("ask", "-m", str(bad), "hi")
        assert result.returncode == 65, result.stderr
        message = result.stderr.decode().strip()
        assert len(message.splitlines()) == 1
        assert str(bad) in message and "crashed (SIGABRT)" in message
    assert "SIGABRT" in probe.verdict_file().read_text()


def test_a_chat_survives_switching_to_a_model_that_aborts_llama_cpp(tmp_path: Path) -> None:
    bad = aborting_llama(tmp_path / "experts.gguf")
    transcript = tmp_path / "chat.md"
    lines = ["Say hi.", f"/model {bad}", "Say bye.", f"/save {transcript}"]
    result = run_cli("chat", "-q", "--greedy", "-n", "8", input="\n".join(lines) + "\n")
    assert result.returncode == 65, result.stderr  # the status of the last error, in a pipe
    errors = [line for line in result.stderr.decode().splitlines() if "error" in line]
    assert len(errors) == 1 and str(bad) in errors[0] and "SIGABRT" in errors[0]
    assert len(result.stdout.decode().strip().splitlines()) >= 2  # both answers
    shown = run_cli("history", "show", "1", "--json")
    history = json.loads(shown.stdout)
    assert history["model"].startswith("SmolLM2")  # the chat kept its model
    roles = [m["role"] for m in history["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert [m["content"] for m in history["messages"]][0::2] == ["Say hi.", "Say bye."]
    saved = transcript.read_text()
    assert "Say hi." in saved and "Say bye." in saved
    assert all(m["content"] in saved for m in history["messages"])
