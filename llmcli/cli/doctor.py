"""``llmcli doctor``: check the installation and say exactly what to fix.

Exit status 0 when nothing failed (warnings such as a CPU-only llama.cpp build
are fine), 1 with the problems listed otherwise; ``--json`` for scripts and bug
reports.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Annotated

import typer

from llmcli.cli.base import environment
from llmcli.context import Environment
from llmcli.errors import ExitStatus
from llmcli.render.json_out import write_json

if TYPE_CHECKING:
    from llmcli.doctor import Report

_STYLES = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}
_LABEL_WIDTH = 14


def doctor(
    cli: typer.Context,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (for scripts and bug reports).")
    ] = False,
) -> None:
    """Check the installation: versions, GPU support, CPU, paths, models, the Hub.

    Exits 0 when healthy (warnings allowed: a CPU-only llama.cpp build is a
    warning), 1 when something must be fixed; each problem says how.
    """
    env = environment(cli)
    from llmcli.doctor import run_checks

    report = run_checks(env.environ)
    if json_output:
        write_json(env.stdout, report.to_dict(), indent=2)
    else:
        print_report(env, report)
    if not report.healthy:
        raise typer.Exit(ExitStatus.ERROR)


def print_report(env: Environment, report: Report) -> None:
    """One line per check; fixes below, unwrapped so commands stay copy-pastable."""
    from rich.text import Text

    from llmcli.render.console import make_console

    console = make_console(env)
    indent = " " * (6 + _LABEL_WIDTH)
    for check in report.checks:
        line = Text()
        line.append(f"{check.status:<5} ", style=_STYLES.get(check.status, ""))
        line.append(f"{check.name:<{_LABEL_WIDTH}}", style="bold")
        line.append(check.summary)
        console.print(line, highlight=False, soft_wrap=True)
        if check.fix:
            console.print(
                textwrap.indent(f"fix: {check.fix}", indent),
                style="cyan",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    console.print()
    problems, warnings = report.problems, report.warnings
    if problems:
        console.print(
            f"{len(problems)} problem(s): " + "; ".join(c.name for c in problems),
            style="bold red",
            markup=False,
        )
    else:
        tail = f" ({len(warnings)} warning(s))" if warnings else ""
        console.print(f"healthy{tail}", style="green", markup=False)
