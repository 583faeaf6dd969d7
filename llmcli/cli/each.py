"""``ask --each-line`` / ``--each-file``: the flags, and the glue to :mod:`llmcli.service.each`.

``ask`` calls :func:`ask_each` when either flag is given; everything about running
the items (batching, order, failures) lives in the service layer, and everything
about how answers look in :mod:`llmcli.render.each`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmcli.config import Settings
from llmcli.context import Environment
from llmcli.engine.base import Engine, GenerationStats, Sampling
from llmcli.errors import LlmcliError, UsageError
from llmcli.session.inputs import EncodingErrors, read_stdin

if TYPE_CHECKING:
    from llmcli.cli.loading import ModelFlags
    from llmcli.service.each import AnswerCheck, EachItem

EACH = "Many inputs"

EachLineOpt = Annotated[
    bool,
    typer.Option(
        "--each-line",
        help="Answer every non-blank line of stdin as its own prompt (the line first, then "
        "the prompt words), several at once; answers in input order.",
        rich_help_panel=EACH,
    ),
]
EachFileOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--each-file",
        metavar="FILE",
        help="Answer FILE as its own prompt (its text first, then the prompt words); "
        "repeat for more files, or give - to read file names from stdin, one per line.",
        rich_help_panel=EACH,
        show_default=False,
    ),
]
ParallelOpt = Annotated[
    int | None,
    typer.Option(
        "--parallel",
        min=1,
        max=64,
        help="Items answered at once: sequences of one llama.cpp batch, or concurrent "
        "requests with --base-url [default: 8, at most the items, and locally at most "
        "CTX/512 so each sequence keeps 512 tokens].",
        rich_help_panel=EACH,
        show_default=False,
    ),
]
NullOpt = Annotated[
    bool,
    typer.Option(
        "--null",
        "-0",
        help="With --each-line/--each-file: end every answer with a NUL byte instead of "
        "separating answers by a blank line (unambiguous for any text).",
        rich_help_panel=EACH,
    ),
]


@dataclass
class EachFlags:
    each_line: bool = False
    each_file: list[Path] = field(default_factory=list)
    parallel: int | None = None
    null: bool = False

    @property
    def active(self) -> bool:
        return self.each_line or bool(self.each_file)


def check_each_flags(
    each: EachFlags,
    json_mode: bool,
    continued: bool,
    show_probs: bool,
    output: Any = None,
    saved: Any = None,
) -> None:
    """Refuse combinations that mean nothing, before anything is loaded.

    ``saved`` is ask's saved prompt (``-p``): not supported per item yet. Structured
    output (``output``) is: every item is constrained and validated.
    """
    if not each.active:
        for given, name in ((each.parallel is not None, "--parallel"), (each.null, "--null")):
            if given:
                raise UsageError(f"{name} needs --each-line or --each-file", hint=f"drop {name}")
        return
    if each.each_line and each.each_file:
        raise UsageError("--each-line and --each-file both given", hint="pass only one of them")
    if each.null and json_mode:
        raise UsageError("--null and --json both given", hint="--json is one object per line")
    if saved is not None:
        raise UsageError(
            f"--prompt does not work with {_which(each)} yet",
            hint="drop it, or give the prompt's text and flags directly",
        )
    for given, name in ((continued, "--continue"), (show_probs, "--show-probs")):
        if given:
            raise UsageError(f"{name} does not work with {_which(each)}", hint=f"drop {name}")


def _which(each: EachFlags) -> str:
    return "--each-line" if each.each_line else "--each-file"


@dataclass
class EachCommand:
    """What ``ask`` has parsed, handed over as one value."""

    env: Environment
    words: list[str]
    system: str | None
    raw: bool
    json_mode: bool
    stats: bool
    encoding_errors: str
    model_name: str = ""
    model_ref: str | None = None

    @property
    def errors(self) -> EncodingErrors:
        return "replace" if self.encoding_errors == "replace" else "strict"


def run_each_command(
    command: EachCommand,
    each: EachFlags,
    flags: ModelFlags,
    settings: Settings,
    sampling: Sampling,
) -> None:
    """Read the items, load the model in this process, answer them all (``ask`` calls this)."""
    from llmcli.cli.loading import load_engine
    from llmcli.cli.notices import show_notices

    items = read_each_items(command, each)  # before the load: a mistake costs no load
    flags.keep_alive = "0"  # the batch decodes on a side context of the in-process model
    engine, resolved = load_engine(flags, settings, command.env)
    show_notices(command.env, engine)
    command.model_name, command.model_ref = resolved.name, flags.model or settings.model
    ask_each(command, each, items, engine, sampling, settings)


def ask_each(
    command: EachCommand,
    each: EachFlags,
    items: list[EachItem],
    engine: Engine,
    sampling: Sampling,
    settings: Settings,
) -> None:
    """Read the items, answer them in input order, report; raises for the exit status."""
    from llmcli.render.each import format_summary, open_progress, open_records
    from llmcli.service.each import EachRequest, raise_for_each, run_each

    env = command.env
    system = command.system if command.system is not None else settings.system
    request = EachRequest(command.words, system, command.raw, each.parallel)
    structured = sampling.json_schema is not None or sampling.grammar is not None
    grammar_for = getattr(engine, "grammar_for", None)
    if structured and grammar_for is not None:
        grammar_for(sampling)  # a grammar llama.cpp cannot compile fails before any item
    output = open_records(
        env,
        json_mode=command.json_mode,
        null=each.null,
        model_name=command.model_name,
        model_ref=command.model_ref,
        logprobs=sampling.logprobs,
        structured=structured,
        schema=sampling.json_schema,
    )
    started = time.perf_counter()
    check = _answer_check(sampling.json_schema) if structured else None
    progress = open_progress(env, len(items))
    summary = run_each(engine, items, request, sampling, output, progress, check)
    if command.stats:
        from llmcli.cli.notices import notify

        tokens = sum(o.stats.generated_tokens for o in summary.outcomes)
        elapsed = time.perf_counter() - started
        notify(env, format_summary(len(items), len(summary.failed), tokens, elapsed))
    raise_for_each(summary)


def _answer_check(schema: dict[str, Any] | None) -> AnswerCheck:
    """``--schema`` with ``--each-line``: an answer that is cut off or invalid fails its item."""
    from llmcli.structured import checked_answer

    def check(text: str, stats: GenerationStats) -> LlmcliError | None:
        try:
            checked_answer(schema, text, stats.finish_reason, stats.generated_tokens)
        except LlmcliError as exc:
            return exc
        return None

    return check


def read_each_items(command: EachCommand, each: EachFlags) -> list[EachItem]:
    """The items, read before the model loads (so a mistake costs no load)."""
    from llmcli.service.each import items_from_files, items_from_lines

    if each.each_file:
        return items_from_files(
            _file_names(command, each.each_file), command.words, errors=command.errors
        )
    if command.env.stdin_isatty:
        raise UsageError(
            "--each-line reads its items from stdin, which is a terminal",
            hint="pipe them in: llmcli ask --each-line 'PROMPT' < items.txt",
        )
    return items_from_lines(read_stdin(sys.stdin.buffer, errors=command.errors), command.words)


def _file_names(command: EachCommand, given: list[Path]) -> list[Path]:
    """The files given, with ``-`` replaced by the names piped in on stdin."""
    names: list[Path] = []
    for path in given:
        if str(path) != "-":
            names.append(path)
            continue
        if command.env.stdin_isatty:
            raise UsageError(
                "--each-file - reads file names from stdin, which is a terminal",
                hint="pipe them in: ls *.txt | llmcli ask --each-file - 'PROMPT'",
            )
        text = read_stdin(sys.stdin.buffer, errors=command.errors)
        names.extend(Path(line) for line in text.splitlines() if line.strip())
    if not names:
        raise UsageError("--each-file - got no file names on stdin", hint="pipe in one per line")
    return names
