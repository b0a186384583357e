import json
import math

import pytest

from handoff.jsontext import JsonRefused, dumps, loads, nesting_depth


def _nested(depth: int, inner: str = "1") -> str:
    return '{"a":' * depth + inner + "}" * depth


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ("{}", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('[[], [[]], []]', 3),
        ('{"a": "[[[{{{"}', 1),
        ('{"a\\"[[": "\\\\", "b": ["]]]"]}', 2),
    ],
)
def test_nesting_depth_counts_brackets_outside_strings(text: str, depth: int) -> None:
    assert nesting_depth(text, 100) == depth


def test_nesting_depth_stops_just_past_the_limit() -> None:
    assert nesting_depth("[" * 100_000, 32) == 33


def test_loads_reads_json_up_to_the_depth() -> None:
    assert loads(_nested(32), 32) == json.loads(_nested(32))


@pytest.mark.parametrize("depth", [33, 962, 10_000, 1_000_000])
def test_loads_refuses_deeper_nesting_without_recursing(depth: int) -> None:
    with pytest.raises(JsonRefused, match="nests deeper than 32 levels"):
        loads(_nested(depth), 32)


def test_brackets_in_strings_do_not_count_towards_the_depth() -> None:
    text = json.dumps({"a": "[" * 10_000})
    assert loads(text, 1) == {"a": "[" * 10_000}


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_loads_refuses_non_finite_constants(constant: str) -> None:
    with pytest.raises(JsonRefused, match=f"holds {constant}, which is not a JSON number"):
        loads(f'{{"x": [1, {constant}]}}', 32)


@pytest.mark.parametrize("number", ["1e400", "-1e400"])
def test_loads_refuses_numbers_that_would_become_infinite(number: str) -> None:
    with pytest.raises(JsonRefused, match=f"the number {number}, too large"):
        loads(f'{{"x": {number}}}', 32)


def test_loads_keeps_large_integers_and_ordinary_floats() -> None:
    assert loads('{"big": 123456789012345678901234567890, "f": 1.5e300}', 32) == {
        "big": 123456789012345678901234567890, "f": 1.5e300}


def test_loads_names_where_invalid_json_fails() -> None:
    with pytest.raises(JsonRefused, match=r"is not valid JSON: .* at position 1"):
        loads("{'a': 1}", 32)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_dumps_refuses_what_no_rfc_8259_parser_reads(value: float) -> None:
    with pytest.raises(ValueError, match="Out of range float"):
        dumps({"x": {"y": [value]}})


def test_dumps_passes_options_on() -> None:
    assert dumps({"b": 1, "a": 2}, separators=(",", ":"), sort_keys=True) == '{"a":2,"b":1}'
