"""Human-friendly sizes and durations for configuration values.

Operators write ``5GiB`` and ``1h``; the code wants bytes and seconds. Kept
free of I/O so it is tested on its own.
"""

import re

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB

#: How much of a file or body is held at once wherever bytes stream through
#: (relay, store, hashing, extraction): big enough that per-read overhead does
#: not show, small enough that memory stays flat whatever the file size.
CHUNK_SIZE = MiB

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": KiB,
    "mib": MiB,
    "gib": GiB,
    "tib": TiB,
}

_DURATION_UNITS = {"": 1, "ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}

_NUMBER_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """Bytes in ``text`` (``1048576``, ``512MiB``, ``5GB``); ValueError otherwise."""
    number, unit = _split(text, "size")
    factor = _SIZE_UNITS.get(unit.lower())
    if factor is None:
        raise ValueError(f"unknown size unit {unit!r} in {text!r} (use B, KiB, MiB, GiB, TiB)")
    return int(number * factor)


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (``30``, ``500ms``, ``5m``, ``1h``, ``2d``); ValueError otherwise."""
    number, unit = _split(text, "duration")
    factor = _DURATION_UNITS.get(unit.lower())
    if factor is None:
        raise ValueError(f"unknown duration unit {unit!r} in {text!r} (use ms, s, m, h, d)")
    return number * factor


def format_size(n: int) -> str:
    """Shortest exact binary-unit spelling of ``n`` bytes, for messages."""
    for unit, factor in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}B"


def _split(text: str, what: str) -> tuple[float, str]:
    match = _NUMBER_UNIT.match(text)
    if match is None:
        raise ValueError(f"not a {what}: {text!r}")
    return float(match.group(1)), match.group(2)
