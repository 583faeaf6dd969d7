"""``--schema``, ``--json-object``, ``--grammar`` and ``-p NAME``: flags for scripts.

A constrained answer is collected rather than streamed: it is validated first, and
stdout then gets the JSON alone, on one line (so ``--each-line`` gives one object
per input line, and ``jq`` reads it directly). An answer that is cut off
(``--max-tokens``, the context) or does not validate is an error, exit 65, with
nothing on stdout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmcli.cli import options as opt
from llmcli.errors import UsageError

if TYPE_CHECKING:
    from llmcli.cli.loading import SamplingFlags
    from llmcli.engine.base import GenerationStats, Sampling
    from llmcli.store.prompts import SavedPrompt

SchemaOpt = Annotated[
    str | None,
    typer.Option(
        "--schema",
        metavar="SCHEMA",
        help="Answer with JSON matching this schema: inline JSON Schema, a file, or fields "
        "like 'name, age int, tags list[str]' (see README, 'For scripts'). Prints the "
        "validated JSON alone, on one line.",
        rich_help_panel=opt.OUTPUT,
        show_default=False,
    ),
]
JsonObjectOpt = Annotated[
    bool,
    typer.Option(
        "--json-object",
        help="Answer with any JSON object (validated, printed on one line).",
        rich_help_panel=opt.OUTPUT,
    ),
]
GrammarOpt = Annotated[
    str | None,
    typer.Option(
        "--grammar",
        metavar="FILE.gbnf",
        help="Constrain the answer with a llama.cpp GBNF grammar file (root rule 'root').",
        rich_help_panel=opt.OUTPUT,
        show_default=False,
    ),
]
PromptNameOpt = Annotated[
    str | None,
    typer.Option(
        "--prompt",
        "-p",
        metavar="NAME",
        help="Use a saved prompt (see 'llmcli prompts'): its text with {input}/$1 filled in, "
        "its system prompt, model, sampling and schema; flags given here win.",
        show_default=False,
    ),
]


@dataclass
class OutputFlags:
    schema: str | None = None
    json_object: bool = False
    grammar: str | None = None


@dataclass
class OutputFormat:
    """What the answer must look like: a schema to validate, and/or a raw grammar."""

    schema: dict[str, Any] | None = None
    grammar: str | None = None

    @property
    def constrained(self) -> bool:
        return self.schema is not None or self.grammar is not None

    def apply(self, sampling: Sampling) -> None:
        sampling.json_schema = self.schema
        sampling.grammar = self.grammar


def resolve_output(flags: OutputFlags, saved: SavedPrompt | None = None) -> OutputFormat:
    """The flags' constraint, else the saved prompt's schema; at most one flag."""
    from llmcli.structured import JSON_OBJECT_SCHEMA, parse_schema_arg, read_grammar

    given = [
        name
        for name, on in (
            ("--schema", flags.schema is not None),
            ("--json-object", flags.json_object),
            ("--grammar", flags.grammar is not None),
        )
        if on
    ]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} exclude each other", hint="pass only one")
    if flags.grammar is not None:
        return OutputFormat(grammar=read_grammar(flags.grammar))
    if flags.json_object:
        return OutputFormat(schema=dict(JSON_OBJECT_SCHEMA))
    if flags.schema is not None:
        return OutputFormat(schema=parse_schema_arg(flags.schema))
    return OutputFormat(schema=saved.schema if saved is not None else None)


def structured_answer(output: OutputFormat, text: str, stats: GenerationStats) -> str:
    """The line to print for a constrained answer, or :class:`AnswerInvalid` (exit 65)."""
    from llmcli.structured import checked_answer

    return checked_answer(output.schema, text, stats.finish_reason, stats.generated_tokens)


# -- saved prompts ------------------------------------------------------------------------


def load_saved(name: str | None) -> SavedPrompt | None:
    if name is None:
        return None
    from llmcli.store.prompts import load_prompt

    return load_prompt(name)


def saved_text(saved: SavedPrompt, stdin_text: str | None, words: list[str]) -> str:
    """The saved prompt's text with the input and words filled in."""
    from llmcli.store.prompts import fill_template

    parts = [part for part in (stdin_text, " ".join(words)) if part and part.strip()]
    input_text = "\n".join(part.rstrip("\n") for part in parts)
    text = fill_template(saved.prompt or "", input_text, words)
    if not text.strip():
        raise UsageError(
            f"the saved prompt {saved.name!r} has no text and no input was given",
            hint="pipe in text or give words after the prompt name",
        )
    return text


def with_saved_sampling(flags: SamplingFlags, saved: SavedPrompt | None) -> SamplingFlags:
    """Knobs not given on the command line take the saved prompt's values."""
    if saved is None:
        return flags
    from llmcli.knobs import KNOBS

    for name, knob in KNOBS.items():
        value = saved.sampling.get(name)
        if value is None:
            continue
        if knob.kind == "bool":
            flags.knobs[name] = bool(flags.knobs.get(name)) or bool(value)
        elif flags.knobs.get(name) is None:
            flags.knobs[name] = value
    if not flags.stop and saved.sampling.get("stop"):
        flags.stop = tuple(saved.sampling["stop"])
    return flags
