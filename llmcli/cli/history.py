"""``llmcli history list|show|rm``: the conversations ``chat`` and ``ask -c`` saved."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmcli.cli import options as opt
from llmcli.cli.base import environment
from llmcli.context import Environment
from llmcli.render.json_out import write_json

if TYPE_CHECKING:
    from llmcli.session.history import ConversationInfo, HistoryStore


IdArg = Annotated[int, typer.Argument(metavar="ID", help="Conversation ID (see 'history list').")]


def _store() -> HistoryStore:
    from llmcli.session.history import HistoryStore

    return HistoryStore()


def _print_json(env: Environment, data: Any) -> None:
    write_json(env.stdout, data, indent=2)
    env.stdout.flush()


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def history_list(
    cli: typer.Context,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="Show at most N conversations.")
    ] = 20,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print a JSON array, one object per conversation.",
            rich_help_panel=opt.OUTPUT,
        ),
    ] = False,
) -> None:
    """List conversations, most recent first."""
    env = environment(cli)
    rows = _store().conversations(limit=limit)
    if json_output:
        _print_json(env, [row.to_dict() for row in rows])
    elif env.stdout_isatty:
        _print_table(env, rows)
    else:
        for row in rows:
            env.stdout.write(
                f"{row.id}\t{_when(row.updated)}\t{row.model or '-'}\t{row.messages}\t{row.title}\n"
            )


def _print_table(env: Environment, rows: list[ConversationInfo]) -> None:
    from rich.table import Table
    from rich.text import Text

    from llmcli.render.console import make_console
    from llmcli.render.sanitize import visible

    console = make_console(env)
    if not rows:
        console.print("No conversations yet: start one with 'llmcli chat'.", style="dim")
        return
    table = Table(box=None, pad_edge=False)
    for name, justify in (("ID", "right"), ("Updated", "left"), ("Model", "left")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    table.add_column("Msgs", justify="right")
    table.add_column("First message", overflow="ellipsis", no_wrap=True)
    for row in rows:
        table.add_row(
            str(row.id),
            _when(row.updated),
            Text(visible(row.model or "-")),
            str(row.messages),
            Text(visible(row.title)),
        )
    console.print(table)


def history_show(
    cli: typer.Context,
    conversation_id: IdArg,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the conversation and its messages as one JSON object.",
            rich_help_panel=opt.OUTPUT,
        ),
    ] = False,
) -> None:
    """Print a conversation."""
    env = environment(cli)
    store = _store()
    info = store.info(conversation_id)
    conversation = store.load(conversation_id)
    if json_output:
        stats = store.message_stats(conversation_id)
        data = info.to_dict()
        data["messages"] = [
            {"role": m.role, "content": m.content, "interrupted": m.interrupted}
            | ({"stats": stats[m.id]} if m.id in stats else {})
            for m in conversation.messages
        ]
        _print_json(env, data)
        return
    from llmcli.session.transcript import to_markdown

    text = to_markdown(conversation, model=info.model, markers=False)
    if env.stdout_isatty:
        from llmcli.render.console import make_console
        from llmcli.render.markdown import AnswerMarkdown
        from llmcli.render.sanitize import visible

        make_console(env).print(AnswerMarkdown(visible(text)))
    else:
        env.stdout.write(text)


def history_rm(
    cli: typer.Context,
    conversation_ids: Annotated[
        list[int], typer.Argument(metavar="ID...", help="Conversation IDs to remove.")
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help='Print {"removed": [IDS], "missing": [IDS]} instead of a line of text.',
            rich_help_panel=opt.OUTPUT,
        ),
    ] = False,
) -> None:
    """Remove conversations (asks first in a terminal; --yes for scripts)."""
    from llmcli.cli.confirm import confirm_removal
    from llmcli.errors import LlmcliError

    env = environment(cli)
    store = _store()
    found = {}
    for conversation_id in dict.fromkeys(conversation_ids):
        with contextlib.suppress(LlmcliError):  # reported below, after the others go
            found[conversation_id] = store.info(conversation_id)
    if found:
        what = ", ".join(f"{i} ({info.title or 'untitled'})" for i, info in found.items())
        count = f"{len(found)} conversation{'s' if len(found) != 1 else ''}"
        confirm_removal(env, f"Remove {count}: {what}?", what=count, yes=yes)
    removed = [i for i in found if store.remove(i)]
    missing = [i for i in dict.fromkeys(conversation_ids) if i not in removed]
    if json_output:
        _print_json(env, {"removed": removed, "missing": missing})
    elif removed:
        env.stdout.write(f"removed {', '.join(map(str, removed))}\n")
    if missing:
        raise LlmcliError(
            f"no conversation {', '.join(map(str, missing))} in the history",
            hint="see 'llmcli history list'",
        )
