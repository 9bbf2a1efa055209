"""The strict JSON parser, unit by unit."""

from __future__ import annotations

import json
from typing import Any

import pytest

from api.app.core.exceptions import RequestRejected
from api.app.core.json_body import json_depth, parse_json_body, value_depth
from regression_model.scoring.rules import json_type


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ('"[[[["', 0),
        ("[]", 1),
        ('{"a": [1, {"b": "]]]]"}]}', 3),
        ('{"inputs": [{"x": "\\"[["}]}', 3),
        ("[" * 50 + "]" * 50, 50),
    ],
)
def test_depth_ignores_brackets_inside_strings(text: str, depth: int) -> None:
    assert json_depth(text.encode()) == depth


@pytest.mark.parametrize(
    "text",
    ["1", '"[["', "[]", "{}", '{"a": [1, {"b": "]]]]"}]}', '[[], [[[]]], {"x": {"y": [0]}}]',
     "[" * 200 + "]" * 200],
)  # fmt: skip
def test_the_parsed_depth_is_the_depth_of_the_bytes(text: str) -> None:
    assert value_depth(json.loads(text)) == json_depth(text.encode())


@pytest.mark.parametrize("depth", [17, 300])
def test_too_deep_valid_json_is_refused_with_its_depth(depth: int) -> None:
    """17 levels: parsed by pydantic-core, measured on the value; 300: over
    pydantic-core's limit, measured on the bytes. The same answer."""
    text = '{"inputs": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"
    with pytest.raises(RequestRejected, match=f"nested {depth} levels deep; at most 16"):
        parse_json_body(text.encode(), max_depth=16)


def test_valid_json_parses_as_the_standard_library_does() -> None:
    text = '{"inputs": [{"a": 1, "b": 2.5, "c": null, "d": "é", "e": [true, false]}]}'
    assert parse_json_body(text.encode(), max_depth=8) == json.loads(text)


def test_long_integers_become_floats_instead_of_failing() -> None:
    value = parse_json_body(("[" + "9" * 5000 + ", 123456789012345678]").encode(), 8)
    assert value == [float("inf"), 123456789012345678]
    assert isinstance(value[1], int)


def test_integers_python_can_read_stay_whole() -> None:
    """Up to 4300 digits an integer is read exactly (the package then refuses
    it as out of range or not finite, for its house alone)."""
    assert parse_json_body(("[" + "9" * 400 + "]").encode(), 8) == [int("9" * 400)]


def test_every_non_finite_literal_is_located() -> None:
    text = '{"inputs": [{"A": 1}, {"B": NaN, "C": [Infinity]}], "x": -Infinity}'
    with pytest.raises(RequestRejected) as caught:
        parse_json_body(text.encode(), max_depth=8)
    found = {(e.row, e.field) for e in caught.value.errors}
    assert found == {(1, "B"), (1, "C"), (None, "x")}
    assert caught.value.status_code == 422


def test_every_lone_surrogate_is_located_and_pairs_pass() -> None:
    """A \\uD800-\\uDFFF escape without its pair parses in Python but is no
    Unicode text (nothing can encode it to UTF-8): each value and field name
    holding one is named. A pair is one character (here an emoji)."""
    pair = '{"inputs": [{"Notes": "\\ud83c\\udfe0 home"}]}'
    assert parse_json_body(pair.encode(), max_depth=8) == {
        "inputs": [{"Notes": "\U0001f3e0 home"}]
    }
    text = (
        '{"inputs": [{"A": "\\ud800"}, {"B": ["x\\udfffy"], "C\\udbff": 1}], '
        '"x": "\\\\ud800 is a backslash and text", "y": "\\uDC00"}'
    )
    with pytest.raises(RequestRejected) as caught:
        parse_json_body(text.encode(), max_depth=8)
    found = {(e.row, e.field) for e in caught.value.errors}
    assert found == {(0, "A"), (1, "B"), (1, "C\\udbff"), (None, "y")}
    assert caught.value.status_code == 422
    json.dumps([e.model_dump() for e in caught.value.errors]).encode()  # encodable


def test_too_deep_is_refused_before_parsing() -> None:
    with pytest.raises(RequestRejected, match="nested 10001 levels"):
        parse_json_body(("[" * 10001).encode(), max_depth=16)


@pytest.mark.parametrize(
    ("value", "name"),
    [(None, "null"), (True, "boolean"), (1, "number"), (1.5, "number"), ("", "string"),
     ([], "array"), ({}, "object")],
)  # fmt: skip
def test_json_type_names(value: object, name: str) -> None:
    assert json_type(value) == name


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ('{"inputs": [{"GrLivArea": 1000, "GrLivArea": -5}]}', {(0, "GrLivArea")}),
        ('{"inputs": [{"A": 1}, {"B": 1, "C": 2, "B": 1, "B": 3}]}', {(1, "B")}),
        ('{"inputs": [{"A": 1}], "inputs": [{"A": 2}]}', {(None, "inputs")}),
        ('{"inputs": [{"A": 1, "\\u0041": 2}]}', {(0, "A")}),  # the same key, escaped
        ('{"inputs": [{"A": {"x": 1, "x": 2}}]}', {(0, "A")}),  # in a value of a house
        ('{"outcomes": [{"key": 1}, {"key": 2, "key": 3}]}', {(1, "key")}),
        ('{"inputs": [], "x": {"y": 1, "y": 2}}', {(None, "x.y")}),
    ],
)
def test_a_repeated_key_is_refused_where_it_is(text: str, found: set[tuple[Any, str]]) -> None:
    """Both parsers would keep the last value: refused, naming the house (or
    outcome) and field."""
    for body in (text.encode(), text.encode() + b" " * (1024 * 1024)):  # both parsers
        with pytest.raises(RequestRejected) as caught:
            parse_json_body(body, max_depth=8)
        assert caught.value.status_code == 422
        assert {(e.row, e.field) for e in caught.value.errors} == found
        assert all(e.message.startswith("given ") for e in caught.value.errors)
    assert "given 3 times" in str(_rejection('{"inputs": [{"B": 1, "B": 1, "B": 3}]}'))


def _rejection(text: str) -> list[Any]:
    with pytest.raises(RequestRejected) as caught:
        parse_json_body(text.encode(), max_depth=8)
    return [e.message for e in caught.value.errors]


@pytest.mark.parametrize(
    "text",
    [
        '{"inputs": [{"Neighborhood": "a:b", "Notes": "::"}], "x": ":"}',  # colons in strings
        '{"inputs": [{"A": {"x": 1, "y": [{"x": 2}]}, "x": 3}]}',  # nested objects
        '{"a": 1, "b": {"a": 1}}',  # the same key in different objects
        '[{"a": 1}, {"a": 1}]',
        '{"": 1, " ": 2}',
    ],
)
def test_keys_repeated_in_no_object_parse_as_the_standard_library_does(text: str) -> None:
    assert parse_json_body(text.encode(), max_depth=8) == json.loads(text)
