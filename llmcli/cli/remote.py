"""``llmcli models list --remote NAME|URL``: what a server serves (the choosing is in
:mod:`llmcli.service.remotes`)."""

from __future__ import annotations

from llmcli.context import Environment
from llmcli.errors import UsageError
from llmcli.render.json_out import write_json
from llmcli.service.remotes import Remote, load_remotes, remote_config

# ---- llmcli models list --remote --------------------------------------------------------


def print_remote_models(env: Environment, target: str, *, json_output: bool) -> None:
    """``llmcli models list --remote NAME|URL``: what the server serves."""
    from llmcli.engine.openai import OpenAIEngine

    remote = _remote_for_listing(target, env)
    engine = OpenAIEngine(remote_config(remote, env.environ))
    try:
        models = engine.list_models()
    finally:
        engine.close()
    if json_output:
        rows = [
            {"model": m.id, "owned_by": m.owned_by, "context_length": m.context_length}
            for m in models
        ]
        write_json(env.stdout, rows)
        return
    if not models:
        env.stdout.write(f"{remote.label} serves no models\n")
        return
    from llmcli.render.sanitize import visible

    shown = visible if env.stdout_isatty else str  # a pipe gets the ids as served
    width = max(len(shown(m.id)) for m in models)
    for m in models:
        context = str(m.context_length) if m.context_length else "-"
        line = f"{shown(m.id):<{width}}  {context:>8}  {shown(m.owned_by or '')}".rstrip()
        env.stdout.write(line + "\n")


def _remote_for_listing(target: str, env: Environment) -> Remote:
    if "://" in target:
        return Remote(base_url=target)
    remotes = load_remotes(env.environ)
    if target not in remotes:
        known = ", ".join(sorted(remotes)) or "none configured"
        raise UsageError(
            f"no remote named {target!r} ({known})",
            hint="pass a URL, or add a [remotes.NAME] table with base_url to the config file",
        )
    return remotes[target]
