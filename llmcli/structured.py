"""Structured output: what ``--schema`` accepts, and checking answers against it.

A schema is given three ways (:func:`parse_schema_arg`):

* inline JSON Schema — the text starts with ``{``;
* a file holding a JSON Schema (or the concise syntax) — the text names a file;
* the concise field syntax (:func:`parse_concise`), e.g. ``'name, age int, tags list[str]'``.

The schema itself is checked with the ``jsonschema`` library before anything is
generated, and every answer is validated with it afterwards — also where a local
grammar already constrained the tokens, since a grammar cannot express every
keyword (``minimum`` on a float, ``uniqueItems``). This module never imports
llama.cpp: a server engine needs the same checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmcli.errors import DataError, UsageError
from llmcli.paths import is_file, user_path

JSON_OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}
"""``--json-object``: any JSON object (a server receives ``response_format: json_object``)."""

CONCISE_TYPES: dict[str, dict[str, str]] = {
    "str": {"type": "string"},
    "string": {"type": "string"},
    "int": {"type": "integer"},
    "integer": {"type": "integer"},
    "float": {"type": "number"},
    "number": {"type": "number"},
    "bool": {"type": "boolean"},
    "boolean": {"type": "boolean"},
}

_FIELD = re.compile(
    r"""^(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)(?P<optional>\?)?
        (?:\s+(?P<type>[A-Za-z]+(?:\[\s*[A-Za-z]+\s*\])?))?
        \s*(?::\s*(?P<description>.*))?$""",
    re.VERBOSE | re.DOTALL,
)


class AnswerInvalid(DataError):
    """The model's answer is not JSON, is cut off, or does not match the schema (exit 65)."""


def parse_schema_arg(value: str) -> dict[str, Any]:
    """The JSON Schema a ``--schema`` value means (inline JSON, a file, or concise fields)."""
    text = value.strip()
    if not text:
        raise UsageError("--schema is empty", hint="give a JSON Schema, a file, or 'name, age int'")
    if not text.startswith("{"):
        path = user_path(text)
        if is_file(path):
            return _schema_from_file(path)
        if text.endswith(".json"):
            raise UsageError(f"schema file not found: {text}", hint="check the path")
    return _schema_from_text(text, where="--schema")


def _schema_from_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read schema file {path}: {exc}") from None
    return _schema_from_text(text.strip(), where=str(path))


def _schema_from_text(text: str, *, where: str) -> dict[str, Any]:
    if text.startswith("{"):
        try:
            schema = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"{where} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                hint="fix the JSON, or use the concise syntax 'name, age int'",
            ) from None
    else:
        schema = parse_concise(text)
    check_schema(schema)
    return schema


def parse_concise(text: str) -> dict[str, Any]:
    """An object schema from fields like ``'name, age int, tags list[str]'``.

    Each field is ``NAME[?] [TYPE] [: description]``: TYPE is ``str`` (the default),
    ``int``, ``float``, ``bool`` or ``list[T]`` of one of those; ``?`` makes the field
    optional (every other field is required); no other properties are allowed. Fields
    are separated by commas, or by newlines when the text has several lines (then a
    description may contain commas).
    """
    parts = text.splitlines() if "\n" in text.strip() else text.split(",")
    properties: dict[str, Any] = {}
    required: list[str] = []
    for raw in parts:
        field = raw.strip()
        if not field:
            continue
        name, optional, prop = _concise_field(field)
        if name in properties:
            raise UsageError(f"schema field {name!r} is given twice")
        properties[name] = prop
        if not optional:
            required.append(name)
    if not properties:
        raise UsageError("the schema names no fields", hint="e.g. --schema 'name, age int'")
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _concise_field(field: str) -> tuple[str, bool, dict[str, Any]]:
    match = _FIELD.match(field)
    if match is None:
        raise UsageError(
            f"cannot read schema field {field!r}",
            hint="write NAME [TYPE] [: description], e.g. 'age int: age in years'",
        )
    prop = _concise_type(match["type"] or "str", field)
    if match["description"]:
        prop["description"] = match["description"].strip()
    return match["name"], bool(match["optional"]), prop


def _concise_type(spec: str, field: str) -> dict[str, Any]:
    spec = spec.replace(" ", "").lower()
    inner = re.fullmatch(r"list\[(\w+)\]", spec)
    if inner:
        return {"type": "array", "items": _concise_type(inner[1], field)}
    if spec in CONCISE_TYPES:
        return dict(CONCISE_TYPES[spec])
    raise UsageError(
        f"unknown type {spec!r} in schema field {field!r}",
        hint="use str, int, float, bool or list[T]",
    )


def check_schema(schema: Any) -> None:
    """A usage error naming the problem when ``schema`` is not a valid JSON Schema."""
    from jsonschema import exceptions, validators

    if not isinstance(schema, dict):
        raise UsageError("a JSON Schema must be a JSON object", hint='e.g. {"type": "object"}')
    try:
        validators.validator_for(schema).check_schema(schema)
    except exceptions.SchemaError as exc:
        raise UsageError(
            f"invalid JSON Schema: {exc.message}{_at(exc.absolute_path)}",
            hint="see https://json-schema.org/understanding-json-schema/",
        ) from None


def validate_answer(schema: Mapping[str, Any], text: str) -> Any:
    """The answer parsed as JSON, or :class:`AnswerInvalid` saying what is wrong."""
    from jsonschema import exceptions, validators

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnswerInvalid(
            f"the answer is not valid JSON: {exc.msg} at character {exc.pos}",
            hint="--json prints the text with the error (a server may ignore response_format)",
        ) from None
    validator = validators.validator_for(schema)(schema)
    error = exceptions.best_match(validator.iter_errors(value))
    if error is not None:
        raise AnswerInvalid(
            f"the answer does not match the schema: {error.message}{_at(error.absolute_path)}",
            hint="--json prints the text with the error (a server may ignore response_format)",
        )
    return value


def checked_answer(
    schema: Mapping[str, Any] | None, text: str, finish_reason: str, generated_tokens: int
) -> str:
    """The line to print for a constrained answer, or :class:`AnswerInvalid` (exit 65).

    An answer cut off by ``--max-tokens`` or the context is refused rather than
    printed half-way; with a schema the answer must parse and validate, and comes
    back as one line of JSON; without one (a raw grammar) it is the text itself.
    """
    if finish_reason == "length":
        raise AnswerInvalid(
            f"the answer was cut off after {generated_tokens} tokens, before it was complete",
            hint="raise --max-tokens (or --ctx), or bound the schema with maxLength/maxItems",
        )
    if schema is None:
        return text.strip()
    return compact(validate_answer(schema, text))


def compact(value: Any) -> str:
    """One line of JSON (what ``--schema`` prints: a script reads one value per line)."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _at(path: Any) -> str:
    parts = list(path)
    if not parts:
        return ""
    return " at " + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def read_grammar(path_text: str) -> str:
    """The text of a ``--grammar`` GBNF file."""
    path = user_path(path_text)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"grammar file not found: {path_text}", hint="check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read grammar file {path_text}: {exc}") from None
    if not text.strip():
        raise UsageError(f"grammar file {path_text} is empty", hint="write GBNF rules: root ::= …")
    return text
