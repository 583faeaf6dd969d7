"""Chat templates that try to exhaust memory or time, and hostile templates inside a model.

Each memory bomb asks for gigabytes in a single step (``'x'|center(10**10)``); the
sandbox must refuse it from an estimate, *before* allocating. The renders run in a
child process whose address space is capped at 1.5 GiB: a template that got as far
as allocating would fail there with "ran out of memory" instead of the refusal.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from importlib.metadata import version
from pathlib import Path

import pytest

from llmcli.engine.template import ChatTemplate, TemplateError
from tests.conftest import run_cli
from tests.faults.tiny_models import byte_level_llama

G = 10**10  # characters: 10 GB as ASCII, 40 GB as a Python str of wide characters
HUGE = "chat template builds a huge value"

MEMORY_BOMBS = {
    "center filter": f"{{{{ 'x'|center({G}) }}}}",
    "ljust method": f"{{{{ 'x'.ljust({G}) }}}}",
    "zfill method": f"{{{{ '1'.zfill({G}) }}}}",
    "expandtabs, many tabs": "{{ ('\\t' * 100000).expandtabs(1000000) }}",
    "str.format width": f"{{{{ '{{:>{G}}}'.format(1) }}}}",
    "% width": f"{{{{ '%{G}d' % 1 }}}}",
    "format filter width": f"{{{{ '%{G}d'|format(1) }}}}",
    "indent, many lines": "{{ ('x\\n' * 1000000)|indent(100000) }}",
    "wordwrap string": "{{ ('x' * 1000000)|wordwrap(1, wrapstring='y' * 100000) }}",
    "replace filter": "{{ ('x' * 1000000)|replace('x', 'y' * 100000) }}",
    "replace method": "{{ ('x' * 1000000).replace('x', 'y' * 100000) }}",
    "join filter": "{% set s = 'x' * 1000000 %}{{ ([s] * 100000)|join }}",
    "str.join": "{% set s = 'x' * 1000000 %}{{ ''.join([s] * 100000) }}",
    "~ doubling": (
        "{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(40) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}"
    ),
    "+ doubling of a list": (
        "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}"
        "{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}"
    ),
    "str * int": f"{{{{ ('x' * {G})|length }}}}",
    "int * str": f"{{{{ ({G} * 'x')|length }}}}",
    "list * int": f"{{{{ ([1] * {G})|length }}}}",
    "tojson indent": f"{{{{ messages|tojson(indent={G}) }}}}",
}

_RENDER_CAPPED = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1536 * 1024 * 1024,) * 2)
from llmcli.engine.template import ChatTemplate, TemplateError
results = {}
for name, source in json.loads(sys.stdin.read()).items():
    try:
        ChatTemplate(source).render([{"role": "user", "content": "hi"}], add_generation_prompt=True)
        results[name] = "rendered"
    except TemplateError as exc:
        results[name] = exc.message
print(json.dumps(results))
"""


def test_memory_bombs_are_refused_before_they_allocate() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _RENDER_CAPPED],
        input=json.dumps(MEMORY_BOMBS).encode(),
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert results == dict.fromkeys(MEMORY_BOMBS, HUGE)


def test_a_runaway_render_stops_itself() -> None:
    """A render thread cannot be killed; past its deadline it must end on its own, or it
    would keep a core busy for the rest of a chat session."""
    endless = "{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateError, match="took too long"):
        ChatTemplate(endless).render(
            [{"role": "user", "content": "hi"}], add_generation_prompt=True
        )
    deadline = time.monotonic() + 30
    while any(t.name == "llmcli-template" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the template thread is still running"
        time.sleep(0.05)


def test_ordinary_templates_still_render() -> None:
    source = (
        "{% for m in messages %}{% if loop.index0 % 2 == 0 and m.role != 'user' %}"
        "{{ raise_exception('roles must alternate') }}{% endif %}"
        "{{ '<|' ~ m.role ~ '|>\\n' + m.content|trim }}{{ '%s' % '\\n' }}{% endfor %}"
        "{{ messages|tojson(indent=2)|length > 0 }} {{ 'a,b'.split(',')|join('+') }}"
        "{{ '{:>5}'.format('x') }}{{ 'x'|center(9) }}{{ ('t\\n' * 3)|indent(2) }}"
    )
    text = ChatTemplate(source).render(
        [{"role": "user", "content": "  hello  "}, {"role": "assistant", "content": "hi"}],
        add_generation_prompt=True,
    )
    assert "<|user|>\nhello\n<|assistant|>\nhi\nTrue a+b    x    x    " in text


def test_jinja2_is_recent_and_the_environment_is_the_immutable_sandbox() -> None:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    major, minor, patch = (int(part) for part in version("jinja2").split(".")[:3])
    assert (major, minor, patch) >= (3, 1, 6)
    template = ChatTemplate("{{ messages }}")
    assert isinstance(template._template.environment, ImmutableSandboxedEnvironment)


# ---- a hostile template inside a model file ----------------------------------------------------


@pytest.fixture
def hostile_model(tmp_path: Path) -> tuple[Path, Path, str]:
    """A loadable tiny model whose embedded template is the CVE-2024-34359 pattern."""
    marker = tmp_path / "pwned"
    template = (
        "{% for c in ''.__class__.__mro__[1].__subclasses__() %}"
        f"{{% if c.__name__ == 'Popen' %}}{{{{ c(['touch', '{marker}']) }}}}{{% endif %}}"
        "{% endfor %}"
    )
    return byte_level_llama(tmp_path / "evil.gguf", chat_template=template), marker, template


def test_the_embedded_template_cannot_run_code(hostile_model: tuple[Path, Path, str]) -> None:
    model, marker, _ = hostile_model
    for command in (["ask", "-m", str(model), "hi"], ["chat", "-m", str(model)]):
        result = run_cli(*command, input="hi\n")
        assert result.returncode == 65, result.stderr
        lines = result.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and "chat template tried an unsafe operation" in lines[0]
        assert "--chat-template" in lines[0]  # the hint says how to get past it
    assert not marker.exists()


def test_models_show_prints_the_template_hash(hostile_model: tuple[Path, Path, str]) -> None:
    model, marker, template = hostile_model
    shown = run_cli("models", "show", str(model))
    assert shown.returncode == 0, shown.stderr
    digest = hashlib.sha256(template.encode()).hexdigest()
    assert f"Chat template SHA-256:     {digest}" in shown.stdout.decode()
    assert not marker.exists()


def test_chat_format_and_chat_template_override_it(
    tmp_path: Path, hostile_model: tuple[Path, Path, str]
) -> None:
    model, marker, _ = hostile_model
    own = tmp_path / "plain.jinja"
    own.write_text("{% for m in messages %}{{ m.content }}\n{% endfor %}")
    for override in (["--chat-format", "chatml"], ["--chat-template", str(own)]):
        result = run_cli("ask", "-m", str(model), *override, "--json", "-n", "2", "hi")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["stats"]["generated_tokens"] == 2
    assert not marker.exists()


def test_a_long_prompt_is_refused_by_the_context_check_not_the_template_limits(
    tmp_path: Path,
) -> None:
    """5 MB of stdin is more than the template size limit alone allows; the limit grows
    with the messages, so the refusal is the one that names both token counts."""
    result = run_cli("ask", "summarise", input=b"lorem ipsum dolor " * 300_000)
    assert result.returncode == 65, result.stderr
    message = result.stderr.decode()
    assert "tokens but the context window holds 4096" in message
    assert "chat template" not in message
