"""No raw control sequence from outside text reaches a terminal; pipes stay byte-exact.

Every test runs the real CLI in a real pseudo-terminal (pexpect), so the default renderer
is the Markdown one, and reads everything the terminal would have received. Rich writes
its own escape codes (colours off here, cursor moves for the live area); the hostile ones
asserted absent are ones Rich never writes: clear screen, an OSC window title, 8-bit CSI.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from llmcli.render.sanitize import visible
from tests.conftest import run_cli
from tests.openai_stub import MODEL, OpenAIStub, Reply, raw_events, send_json, status, stream

CLEAR = "\x1b[2J"
TITLE = "\x1b]0;pwned\x07"
CSI8 = "\x9b31m"
HOSTILE = f"one {CLEAR}two {TITLE}three {CSI8}four\x08\x00five"


def in_terminal(*args: str, timeout: float = 120) -> tuple[bytes, int]:
    """Run ``llmcli ARGS`` with stdout and stderr on a pty; everything it wrote, and the
    exit status."""
    env = dict(os.environ, TERM="xterm", NO_COLOR="1", PROMPT_TOOLKIT_NO_CPR="1")
    child = pexpect.spawn(
        sys.executable, ["-m", "llmcli", *args], env=env, dimensions=(40, 160), timeout=timeout
    )
    output = child.read()
    child.close()
    return bytes(output), int(child.exitstatus if child.exitstatus is not None else -1)


def assert_clean(output: bytes) -> None:
    text = output.decode("utf-8", errors="replace")
    for hostile in (CLEAR, "\x1b]0;", "\x9b", "\x08", "\x00"):
        assert hostile not in text, (hostile, text[-800:])


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub() as server:
        yield server


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LLMCLI_API_KEY", "OPENAI_API_KEY", "LLMCLI_BASE_URL", "LLMCLI_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)


def test_the_sanitiser_keeps_newlines_and_tabs_and_shows_the_rest() -> None:
    assert visible("a\tb\nc") == "a\tb\nc"
    shown = visible(HOSTILE)
    assert "\x1b" not in shown and "\x9b" not in shown and "\x07" not in shown
    assert "␛[2J" in shown and "\ufffd31m" in shown


@pytest.mark.parametrize("mode", [[], ["--plain"]], ids=["markdown", "plain"])
def test_model_output_from_a_server_is_made_safe_in_a_terminal(
    stub: OpenAIStub, mode: list[str]
) -> None:
    stub.script(stream([HOSTILE[:9], HOSTILE[9:20], HOSTILE[20:]]))
    output, code = in_terminal("ask", "--base-url", stub.url, *mode, "hi")
    assert code == 0, output
    assert_clean(output)
    assert b"four" in output and b"five" in output


def test_piped_stdout_stays_byte_exact(stub: OpenAIStub) -> None:
    stub.script(stream([HOSTILE]))
    result = run_cli("ask", "--base-url", stub.url, "hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (HOSTILE + "\n").encode()


def test_an_error_body_is_made_safe(stub: OpenAIStub) -> None:
    stub.script(status(400, f"bad request {HOSTILE}"))
    output, code = in_terminal("ask", "--base-url", stub.url, "hi")
    assert code != 0 and b"error" in output
    assert_clean(output)


def test_an_sse_error_event_is_made_safe(stub: OpenAIStub) -> None:
    import json

    payload = json.dumps({"error": {"message": f"overloaded {HOSTILE}"}})
    stub.script(raw_events(f"data: {payload}\n\n".encode()))
    output, code = in_terminal("ask", "--base-url", stub.url, "hi")
    assert code != 0 and b"overloaded" in output
    assert_clean(output)


def _models(ids: list[str]) -> Reply:
    def act(handler: Any, stub: OpenAIStub) -> None:
        data = [{"id": i, "object": "model", "owned_by": f"me{CLEAR}"} for i in ids]
        send_json(handler, 200, {"object": "list", "data": data})

    return Reply(act, "models")


def test_remote_model_ids_are_made_safe(stub: OpenAIStub) -> None:
    stub.models_reply = _models([f"evil{CLEAR}{TITLE}", MODEL])
    output, code = in_terminal("models", "list", "--remote", stub.url)
    assert code == 0, output
    assert_clean(output)
    assert b"evil" in output
    piped = run_cli("models", "list", "--remote", stub.url)
    assert f"evil{CLEAR}{TITLE}".encode() in piped.stdout  # a pipe gets the id as served


def test_a_template_raise_exception_message_is_made_safe(tmp_path: Path) -> None:
    from tests.faults.tiny_models import byte_level_llama

    template = "{{ raise_exception('roles must alternate " + CLEAR + TITLE + "') }}"
    model = byte_level_llama(tmp_path / "raises.gguf", chat_template=template)
    output, code = in_terminal("ask", "-m", str(model), "hi")
    assert code == 65, output
    assert b"roles must alternate" in output
    assert_clean(output)


def test_history_show_and_list_are_made_safe() -> None:
    from llmcli.session.conversation import Conversation
    from llmcli.session.history import HistoryStore

    conversation = Conversation()
    conversation.add("user", f"question {HOSTILE}")
    conversation.add("assistant", f"answer {HOSTILE}")
    store = HistoryStore()
    conv_id = store.save_new(conversation, model=f"model{CLEAR}")
    store.close()
    for args in (("history", "show", str(conv_id)), ("history", "list")):
        output, code = in_terminal(*args)
        assert code == 0, output
        assert_clean(output)
        assert b"question" in output
    piped = run_cli("history", "show", str(conv_id))
    assert HOSTILE.encode() in piped.stdout


# ---- --json and --schema in a terminal ------------------------------------------------------

RAW_IN_JSON = "del\x7f nel\x85 csi\x9b31m"
"""What json.dumps(ensure_ascii=False) leaves raw: DEL and the C1 controls."""


def _no_raw_controls(output: bytes) -> str:
    text = output.decode("utf-8")
    raw = [hex(ord(c)) for c in text if c == "\x7f" or "\x80" <= c <= "\x9f" or c == "\x1b"]
    assert not raw, (raw, text[-400:])
    return text


def test_json_in_a_terminal_escapes_every_control_and_means_the_same(stub: OpenAIStub) -> None:
    import json

    stub.script(stream([HOSTILE, RAW_IN_JSON]))
    output, code = in_terminal("ask", "--base-url", stub.url, "--json", "hi")
    assert code == 0, output
    text = _no_raw_controls(output)
    assert "\\u009b31m" in text and "\\u007f" in text and "\\u001b" in text
    assert json.loads(text)["text"] == HOSTILE + RAW_IN_JSON


def test_json_into_a_pipe_is_exactly_what_json_dumps_gives(stub: OpenAIStub) -> None:
    import json

    stub.script(stream([HOSTILE, RAW_IN_JSON]))
    result = run_cli("ask", "--base-url", stub.url, "--json", "hi")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["text"] == HOSTILE + RAW_IN_JSON
    assert result.stdout == (json.dumps(data, ensure_ascii=False) + "\n").encode()
    assert "\x9b".encode() in result.stdout  # raw, as before: a pipe is byte-exact


def test_a_schema_answer_in_a_terminal_escapes_c1_controls(stub: OpenAIStub) -> None:
    import json

    answer = json.dumps({"a": RAW_IN_JSON}, ensure_ascii=False)
    stub.script(stream([answer]))
    schema = '{"type": "object"}'
    output, code = in_terminal("ask", "--base-url", stub.url, "--schema", schema, "hi")
    assert code == 0, output
    assert json.loads(_no_raw_controls(output)) == {"a": RAW_IN_JSON}


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["text", "json"])
def test_each_file_answers_in_a_terminal_are_made_safe(
    stub: OpenAIStub, tmp_path: Path, json_flag: list[str]
) -> None:
    stub.script(stream([HOSTILE, RAW_IN_JSON]))
    item = tmp_path / "item.txt"
    item.write_text("question")
    output, code = in_terminal("ask", "--base-url", stub.url, "--each-file", str(item), *json_flag)
    assert code == 0, output
    _no_raw_controls(output)
    assert b"four" in output and b"five" in output
