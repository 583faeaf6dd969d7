"""Templates are bounded for real: single C-level operations, compilation and nesting depth.

The work runs in a forked child (:mod:`llmcli.engine.template_worker`) that is killed at
the deadline, so after the error nothing keeps a core busy in this process.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from llmcli.engine.template import MAX_SECONDS, ChatTemplate, TemplateError
from tests.conftest import run_cli
from tests.faults.tiny_models import byte_level_llama

MESSAGES = [{"role": "user", "content": "hi"}]
DOUBLED = "{% set ns = namespace(a=[1]) %}{% for i in range(30) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}"  # noqa: E501


def cpu_seconds_over(interval: float) -> float:
    before = time.process_time()
    time.sleep(interval)
    return time.process_time() - before


@pytest.mark.parametrize(
    "source",
    [
        "{% set n = messages|length + 8 %}{{ ((((n ** 64) ** 64) ** 64) ** 64) ** 64 > 5 }}",
        DOUBLED + "{{ ns.a }}",
        DOUBLED + "{{ ns.a|tojson }}",
        DOUBLED + "{{ ns.a|pprint }}",
        "{% set ns = namespace(a=['x' * 1000]) %}{% for i in range(22) %}"
        "{% set ns.a = ns.a + ns.a %}{% endfor %}{{ ns.a|join }}",
    ],
    ids=["power", "repr", "tojson", "pprint", "join"],
)
def test_a_single_c_level_operation_is_stopped_at_the_deadline(source: str) -> None:
    template = ChatTemplate(source)
    started = time.monotonic()
    with pytest.raises(TemplateError):
        template.render(MESSAGES, add_generation_prompt=True)
    assert time.monotonic() - started < MAX_SECONDS + 1.5
    assert cpu_seconds_over(0.5) < 0.25  # nothing left running here


def test_a_15_mb_template_is_refused_within_the_deadline() -> None:
    started = time.monotonic()
    with pytest.raises(TemplateError, match="too long|out of memory|crashed"):
        ChatTemplate("{{ 1 }}" * 2_200_000)  # ~15 MB: minutes and > 6 GiB in Jinja2
    assert time.monotonic() - started < MAX_SECONDS + 2.0


@pytest.mark.parametrize(
    "template",
    [
        "".join(f"{{% for x{i} in messages %}}" for i in range(30)) + "x" + "{% endfor %}" * 30,
        "{{ " + "(" * 300 + "1" + ")" * 300 + " }}",
    ],
    ids=["30-nested-for", "300-parentheses"],
)
def test_deep_nesting_is_a_clear_data_error(tmp_path: Path, template: str) -> None:
    path = tmp_path / "deep.jinja"
    path.write_text(template)
    result = run_cli("ask", "--chat-template", str(path), "-n", "2", "hi")
    message = result.stderr.decode()
    assert result.returncode == 65, message
    assert "nested too deeply" in message and "internal error" not in message
    assert len(message.strip().splitlines()) == 1


def test_ctrl_c_during_a_render_stops_it_at_once_and_exits_130(tmp_path: Path) -> None:
    import subprocess

    slow = DOUBLED + "{{ ns.a }}"  # one C-level repr: seconds, never returns to Python
    model = byte_level_llama(tmp_path / "slow.gguf", chat_template=slow)
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmcli", "ask", "-m", str(model), "hi"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not _rendering(proc.pid):  # a forked child with our command line: the render
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
        time.sleep(0.01)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGINT)
    sent = time.monotonic()
    while _rendering(proc.pid) and time.monotonic() - sent < 5:
        time.sleep(0.005)
    stopped = time.monotonic() - sent
    proc.wait(timeout=30)
    assert proc.returncode == 130, proc.stderr.read() if proc.stderr else b""
    assert stopped < 0.2, f"the render was still running {stopped:.3f} s after Ctrl-C"


def _rendering(pid: int) -> bool:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        mine = Path(f"/proc/{pid}/cmdline").read_bytes()
        return any(Path(f"/proc/{c}/cmdline").read_bytes() == mine for c in children)
    except OSError:
        return False
