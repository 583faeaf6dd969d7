"""Chat templates are untrusted code: sandboxed, bounded, and failing with exit 65."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmcli.engine.template import BUILTIN_FORMATS, ChatTemplate, TemplateError
from tests.conftest import run_cli

MESSAGES = [{"role": "user", "content": "hi"}]

# The CVE-2024-34359 pattern: walk from a string to Python's object graph and run a command.
CVE_2024_34359 = (
    "{% for c in ''.__class__.__mro__[1].__subclasses__() %}"
    "{% if c.__name__ == 'Popen' %}{{ c(['touch', '/tmp/llmcli-pwned']) }}{% endif %}"
    "{% endfor %}"
)
HOSTILE = {
    "python internals": CVE_2024_34359,
    "globals access": "{{ raise_exception.__globals__['os'].system('true') }}",
    "endless nested loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    ),
    "huge string by multiplication": "{{ 'x' * 1000000000 }}",
    "huge string by doubling": (
        "{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(40) %}"
        "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}"
    ),
    "huge output": "{% for i in range(100000) %}{{ 'y' * 100 }}{% endfor %}",
    "deep recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "syntax error": "{% for m in messages %}{{ m.content }",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_template_fails_with_a_clear_error(name: str) -> None:
    with pytest.raises(TemplateError) as info:
        ChatTemplate(HOSTILE[name]).render(MESSAGES, add_generation_prompt=True)
    assert "chat template" in str(info.value)
    assert not Path("/tmp/llmcli-pwned").exists()


def test_builtin_formats_render() -> None:
    for source in BUILTIN_FORMATS.values():
        text = ChatTemplate(source, bos_token="<s>", eos_token="</s>").render(
            MESSAGES, add_generation_prompt=True
        )
        assert "hi" in text


def test_raise_exception_in_template_is_reported() -> None:
    template = ChatTemplate("{{ raise_exception('roles must alternate') }}")
    with pytest.raises(TemplateError, match="roles must alternate"):
        template.render(MESSAGES, add_generation_prompt=True)


@pytest.mark.parametrize("name", ["python internals", "endless nested loops", "huge output"])
def test_hostile_template_file_exits_65(tmp_path: Path, name: str) -> None:
    template = tmp_path / "evil.jinja"
    template.write_text(HOSTILE[name])
    result = run_cli("ask", "--chat-template", str(template), "--max-tokens", "3", "hi")
    assert result.returncode == 65, result.stderr
    message = result.stderr.decode()
    assert "chat template" in message
    assert "Traceback" not in message
    assert len(message.strip().splitlines()) == 1
    assert not Path("/tmp/llmcli-pwned").exists()


def test_chat_format_overrides_the_model_template() -> None:
    result = run_cli("ask", "--chat-format", "llama-2", "--json", "--max-tokens", "2", "hi")
    assert result.returncode == 0, result.stderr
    unknown = run_cli("ask", "--chat-format", "nope", "hi")
    assert unknown.returncode == 2
    assert b"chatml" in unknown.stderr
