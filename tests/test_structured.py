"""Structured output without a model: --schema values, schema checks, integer ranges, answers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcli.engine.base import Sampling
from llmcli.engine.grammar import integer_bounds, integer_range_rule
from llmcli.engine.openai import output_format_fields
from llmcli.errors import UsageError
from llmcli.structured import (
    JSON_OBJECT_SCHEMA,
    AnswerInvalid,
    compact,
    parse_concise,
    parse_schema_arg,
    validate_answer,
)

# -- the concise syntax ---------------------------------------------------------------------


def test_concise_fields_default_to_required_strings() -> None:
    schema = parse_concise("name, age int, tags list[str]")
    assert schema == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "age", "tags"],
        "additionalProperties": False,
    }


def test_concise_descriptions_optional_fields_and_newlines() -> None:
    schema = parse_concise("name: the person's name, first and last\nscore? float\nok bool")
    assert schema["properties"]["name"] == {
        "type": "string",
        "description": "the person's name, first and last",
    }
    assert schema["properties"]["score"] == {"type": "number"}
    assert schema["required"] == ["name", "ok"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name, age integr", "unknown type 'integr'"),
        ("name, name", "given twice"),
        ("9lives int", "cannot read schema field"),
        (" , ", "names no fields"),
        ("tags list[list[str]]", "cannot read schema field"),
    ],
)
def test_bad_concise_fields_are_usage_errors(text: str, problem: str) -> None:
    with pytest.raises(UsageError, match=re.escape(problem)):
        parse_concise(text)


# -- --schema values ------------------------------------------------------------------------


def test_schema_inline_file_and_concise(tmp_path: Path) -> None:
    inline = '{"type": "object", "properties": {"a": {"type": "integer"}}}'
    assert parse_schema_arg(inline)["properties"]["a"] == {"type": "integer"}
    path = tmp_path / "s.json"
    path.write_text(inline)
    assert parse_schema_arg(str(path)) == json.loads(inline)
    concise_file = tmp_path / "fields.txt"
    concise_file.write_text("a int\nb\n")
    assert parse_schema_arg(str(concise_file))["required"] == ["a", "b"]
    assert parse_schema_arg("a int")["properties"] == {"a": {"type": "integer"}}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('{"type": "object",}', "is not valid JSON"),
        ('{"type": "objekt"}', "invalid JSON Schema: 'objekt' is not valid"),
        ('{"type": "integer", "minimum": "3"}', "invalid JSON Schema: '3' is not of type"),
        ('{"properties": {"a": {"type": 5}}}', "at .properties.a.type"),
        ("missing.json", "schema file not found"),
        ("", "--schema is empty"),
    ],
)
def test_invalid_schemas_are_usage_errors_naming_the_problem(value: str, problem: str) -> None:
    with pytest.raises(UsageError, match=re.escape(problem)):
        parse_schema_arg(value)


# -- answers --------------------------------------------------------------------------------


def test_answers_are_validated_with_a_path_to_the_problem() -> None:
    schema = parse_concise("name, tags list[int]")
    assert validate_answer(schema, '{"name": "x", "tags": [1, 2]}') == {"name": "x", "tags": [1, 2]}
    with pytest.raises(AnswerInvalid, match=re.escape("is not of type 'integer' at .tags[1]")):
        validate_answer(schema, '{"name": "x", "tags": [1, "2"]}')
    with pytest.raises(AnswerInvalid, match="not valid JSON"):
        validate_answer(schema, '{"name": "x", "ta')
    with pytest.raises(AnswerInvalid, match="'tags' is a required property"):
        validate_answer(schema, '{"name": "x"}')
    assert compact({"a": [1, "é"]}) == '{"a": [1, "é"]}'


# -- integer ranges in the grammar -----------------------------------------------------------


def _as_regex(rule: str) -> re.Pattern[str]:
    """The GBNF subset integer_range_rule writes ("d", [a-b], {n}, |, parens) as a regex."""
    return re.compile(re.sub(r'"(.)"', r"\1", rule).replace(" ", ""))


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.none(), st.integers(-(10**6), 10**6)),
    st.one_of(st.none(), st.integers(-(10**6), 10**6)),
    st.lists(st.integers(-(10**7), 10**7), min_size=20, max_size=20),
)
def test_integer_range_matches_exactly_the_range(
    low: int | None, high: int | None, probes: list[int]
) -> None:
    if low is not None and high is not None and low > high:
        low, high = high, low
    pattern = _as_regex(integer_range_rule(low, high))
    edges = [b + d for b in (low, high) if b is not None for d in (-11, -10, -1, 0, 1, 9, 10)]
    for n in probes + edges + [0, -1, 1]:
        inside = (low is None or n >= low) and (high is None or n <= high)
        assert bool(pattern.fullmatch(str(n))) == inside, (low, high, n)
    assert not pattern.fullmatch("01") and not pattern.fullmatch("-0")


def test_integer_bounds_read_exclusive_and_float_bounds() -> None:
    assert integer_bounds({"type": "integer", "minimum": 1, "maximum": 5}) == (1, 5)
    assert integer_bounds({"type": "integer", "exclusiveMinimum": 0, "maximum": 9.5}) == (1, 9)
    assert integer_bounds({"type": "integer"}) is None
    assert integer_bounds({"type": "integer", "enum": [1, 2], "minimum": 0}) is None
    with pytest.raises(UsageError, match="integer range is empty"):
        integer_range_rule(5, 1)


# -- what a server is sent --------------------------------------------------------------------


def test_remote_request_fields() -> None:
    schema = parse_concise("a int")
    assert output_format_fields(Sampling()) == {}
    assert output_format_fields(Sampling(json_schema=JSON_OBJECT_SCHEMA)) == {
        "response_format": {"type": "json_object"}
    }
    assert output_format_fields(Sampling(json_schema=schema)) == {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": True},
        }
    }
    assert output_format_fields(Sampling(grammar='root ::= "x"')) == {"grammar": 'root ::= "x"'}
