"""RFC 8259 JSON, the one way handoff reads JSON from clients and writes JSON to anyone.

Python's :mod:`json` differs from RFC 8259 in two ways that matter here.
It reads and writes ``NaN``, ``Infinity`` and ``-Infinity``, which other
parsers (JavaScript's ``JSON.parse``) refuse, so one such value in a
client's metadata would make every later status document, webhook body and
log line unreadable to them. And it parses one nesting level per Python
stack frame, so a few kilobytes of brackets raise ``RecursionError``
instead of a parse error. :func:`loads` refuses both before they get in and
:func:`dumps` refuses to write what no RFC 8259 parser reads.

Kept free of the services' dependencies, like :mod:`handoff.fields`, so
the client checks with the same rules.
"""

import json
import math
import re
from typing import Any, NoReturn

# A JSON string (skipped whole) or a bracket: all that nesting depth depends on.
_NESTING_RE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_OPENING = frozenset("[{")


class JsonRefused(ValueError):
    """Text that is not RFC 8259 JSON, or nests too deep; the message says why.

    Messages read as a predicate (``"nests deeper than 32 levels"``), so a
    caller puts the name of what it parsed in front.
    """


def loads(text: str, max_depth: int) -> Any:
    """The value of ``text``, refused unless it is RFC 8259 JSON nesting at most ``max_depth``.

    The depth is measured on the text, without recursion, before the
    parser (which recurses) sees it. Numbers too large for a float would
    become infinity, so they are refused too.
    """
    depth = nesting_depth(text, max_depth)
    if depth > max_depth:
        raise JsonRefused(f"nests deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise JsonRefused(f"is not valid JSON: {exc.msg} at position {exc.pos}") from None


def nesting_depth(text: str, limit: int) -> int:
    """How deep the arrays and objects of ``text`` nest, counting stops just past ``limit``.

    Brackets inside strings do not count. In a text that is not JSON the
    figure may be wrong, but only past the point where a parser stops.
    """
    depth = deepest = 0
    for match in _NESTING_RE.finditer(text):
        token = match.group()
        if token in _OPENING:
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                break
        elif len(token) == 1:
            depth -= 1
    return deepest


def dumps(value: Any, **options: Any) -> str:
    """``value`` as JSON; ValueError for NaN or an infinity, which no RFC 8259 parser reads."""
    return json.dumps(value, allow_nan=False, **options)


def _refuse_constant(name: str) -> NoReturn:
    raise JsonRefused(f"holds {name}, which is not a JSON number (RFC 8259)")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise JsonRefused(f"holds the number {text}, too large for a double")
    return number
