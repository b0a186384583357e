"""The ``geojson`` purpose: GeoJSON files (RFC 7946) of any size, summarised.

Each uploaded file must be one GeoJSON object. It is read as a stream of
parser events (ijson), never as a document, so memory stays flat however
many features a FeatureCollection holds or however many vertices one
geometry has; objects and arrays nested deeper than MAX_DEPTH levels, which
would make the parser's own memory grow, are refused before it reads them.

Per file the result has the top-level ``type``, the feature count, the
geometry types by count, the bounding box of every position (x and y; z and
m are ignored) and the ``crs`` member when the file has one (RFC 7946
dropped it, so ``null`` means WGS 84 longitude/latitude, or whatever the
sender assumed).

All three kinds of GeoJSON text are accepted: a FeatureCollection, a single
Feature (one feature) and a bare Geometry, which is counted as one feature
of that geometry type, so every file reads the same way. A Feature whose
``geometry`` is ``null`` or missing is counted under ``without_geometry``.
JSON that is not GeoJSON, and anything that is not JSON, fails the upload
with a message saying where the file went wrong.
"""

import math
import re
from collections import Counter, deque
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import IO, Any, NoReturn

import ijson

from handoff.processors import Job, ValidationFailed

GEOMETRY_TYPES = frozenset({"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                            "MultiPolygon", "GeometryCollection"})
# Bytes per read; the parser turns each read into a batch of events in memory.
BUFFER = 64 * 1024
# Objects and arrays inside one another; the deepest real GeoJSON (a MultiPolygon
# in a Feature in a FeatureCollection, or nested GeometryCollections) needs about 10.
# The parser's memory grows with the depth, so deeper input is refused before it
# reaches the parser (see DepthGuard).
MAX_DEPTH = 100
# A longer path (long member names) can only be hostile: the parser's work per
# event grows with it.
MAX_PATH = 1000
# The crs member is kept whole; a real one is a few hundred bytes of events.
MAX_CRS_EVENTS = 1000
_BOM = b"\xef\xbb\xbf"
_NESTED = ".geometries.item"


class Role(Enum):
    """What a parser path means in a GeoJSON object."""

    TOP = "top"
    TOP_TYPE = "top type"
    CRS = "crs"
    FEATURES = "features"
    FEATURE = "feature"
    FEATURE_TYPE = "feature type"
    GEOMETRY = "geometry"
    GEOMETRY_TYPE = "geometry type"
    NESTED_TYPE = "nested geometry type"
    COORDINATES = "coordinates"
    TOO_DEEP = "too deep"
    OTHER = "other"


# Which top-level type a path's numbers count for: a FeatureCollection's
# features, a Feature's geometry, or a bare geometry.
COLLECTION, FEATURE, BARE = "FeatureCollection", "Feature", "Geometry"


@dataclass
class Tally:
    """What one reading of the file found, for one kind of top-level object."""

    features: int = 0
    without_geometry: int = 0
    types: Counter[str] = field(default_factory=Counter)
    # min x, min y, max x, max y: updated in place, by axis (0: x, 1: y)
    bbox: list[float] = field(default_factory=lambda: [math.inf, math.inf, -math.inf, -math.inf])


def process(job: Job) -> dict[str, Any]:
    """Summarise every uploaded GeoJSON file."""
    files = [summarise(file.path, file.name) for file in job.files]
    return {"files": files, "feature_count": sum(f["feature_count"] for f in files)}


def summarise(path: Path, label: str) -> dict[str, Any]:
    """One file's summary; ValidationFailed if it is not GeoJSON."""
    with path.open("rb") as handle:
        if handle.read(len(_BOM)) != _BOM:
            handle.seek(0)
        reader = _Reader(label)
        try:
            reader.read(DepthGuard(handle, label, offset=handle.tell()))
        except ijson.JSONError as exc:
            raise ValidationFailed(f"{label} is not valid JSON: {_reason(exc)}") from None
        except UnicodeDecodeError:
            raise ValidationFailed(f"{label} is not valid JSON: it is not UTF-8 text") from None
    return reader.summary()


def _reason(exc: Exception) -> str:
    """The parser's own first line (yajl's next lines quote the file's bytes)."""
    text = str(exc).removeprefix("b'").replace("\\n", "\n")
    first = text.split("\n", 1)[0].strip()
    return first[:200] or type(exc).__name__


@lru_cache(maxsize=4096)
def classify(prefix: str) -> tuple[str, Role]:
    """The top-level kind a parser path belongs to, and its role there."""
    if len(prefix) > MAX_PATH:
        return BARE, Role.TOO_DEEP
    if prefix == "":
        return BARE, Role.TOP
    if prefix == "type":
        return BARE, Role.TOP_TYPE
    if prefix == "crs" or prefix.startswith("crs."):
        return BARE, Role.CRS
    if prefix == "features":
        return COLLECTION, Role.FEATURES
    if prefix == "features.item":
        return COLLECTION, Role.FEATURE
    if prefix == "features.item.type":
        return COLLECTION, Role.FEATURE_TYPE
    for base, kind in (("features.item.geometry", COLLECTION), ("geometry", FEATURE)):
        if prefix == base or prefix.startswith(base + "."):
            return kind, _geometry_role(prefix[len(base):])
    if prefix.startswith(("coordinates", "geometries")):
        return BARE, _geometry_role("." + prefix)
    return BARE, Role.OTHER


def _geometry_role(rest: str) -> Role:
    """The role of a path inside a geometry object, given relative to it."""
    nested = False
    while rest.startswith(_NESTED):
        rest, nested = rest[len(_NESTED):], True
    if rest == "":
        return Role.OTHER if nested else Role.GEOMETRY
    if rest == ".type":
        return Role.NESTED_TYPE if nested else Role.GEOMETRY_TYPE
    if rest.startswith(".coordinates") and set(rest[len(".coordinates"):].split(".")) <= {
            "", "item"}:
        return Role.COORDINATES
    return Role.OTHER


# The rest of a JSON string: up to its closing quote (group 1), or to the end of
# the bytes read so far, where a lone backslash (group 2) escapes the next read's
# first byte. Possessive, so that it never backtracks; it always matches, so a
# search never restarts inside a string.
_STRING_REST = re.compile(rb'(?:[^"\\]++|\\.)*+(?:(")|(\\?)\Z)', re.DOTALL)
_STRING = re.compile(b'"' + _STRING_REST.pattern, re.DOTALL)
_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(_BRACKETS)))
# The change of depth per bracket byte, indexed by the byte.
_STEP = [0] * 256
for _opener, _closer in (b"[]", b"{}"):
    _STEP[_opener], _STEP[_closer] = 1, -1


class DepthGuard:
    """A binary reader that refuses JSON nested deeper than MAX_DEPTH before the parser sees it.

    ijson keeps per-level state (the path of every event, yajl's stack), so
    a file of nothing but brackets takes gigabytes before a check on parser
    events could speak. This reader tracks the depth of the bytes it hands
    over, brackets inside strings (escapes included) not counting, whatever
    the size of each read. Each read is scanned by the regex engine and
    ``bytes.count``; only a read with many brackets is walked bracket by
    bracket, in C (``accumulate``), so the cost stays small beside parsing.
    """

    def __init__(self, handle: IO[bytes], label: str, offset: int = 0,
                 limit: int = MAX_DEPTH) -> None:
        self._handle, self._label, self._limit = handle, label, limit
        self.offset = offset
        self.depth = 0
        self._in_string = False
        self._escaped = False

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self.feed(chunk)
        return chunk

    def feed(self, chunk: bytes) -> None:
        """Account for ``chunk``; ValidationFailed if it nests too deeply."""
        if not chunk:
            return
        state = (self.depth, self._in_string, self._escaped)
        brackets = self._structure(chunk).translate(None, _NOT_BRACKETS)
        opened = brackets.count(b"[") + brackets.count(b"{")
        if self.depth + opened > self._limit and _deepest(brackets, self.depth) > self._limit:
            self._check_exactly(chunk, state)
        self.depth += 2 * opened - len(brackets)
        self.offset += len(chunk)

    def _structure(self, chunk: bytes) -> bytes:
        """The chunk without its strings, noting whether it ends inside one."""
        start = 0
        if self._escaped:
            start, self._escaped = 1, False
        if self._in_string:
            rest = _STRING_REST.match(chunk, start)
            assert rest is not None
            if not self._ends_string(rest):
                return b""
            start = rest.end()
        segment = chunk[start:]
        last = deque(_STRING.finditer(segment), maxlen=1)
        if last:
            self._ends_string(last[0])
        return _STRING.sub(b"", segment)

    def _ends_string(self, match: re.Match[bytes]) -> bool:
        """Whether the string ``match`` read is closed; if not, it stays open."""
        self._in_string = match.group(1) is None
        self._escaped = bool(match.group(2))
        return not self._in_string

    def _check_exactly(self, chunk: bytes, state: tuple[int, bool, bool]) -> None:
        """Walk the chunk byte by byte, to name where it goes too deep if it does."""
        depth, in_string, escaped = state
        for index, byte in enumerate(chunk):
            if escaped:
                escaped = False
            elif in_string:
                escaped, in_string = byte == 0x5C, byte != 0x22
            elif byte == 0x22:
                in_string = True
            else:
                depth += _STEP[byte]
                if depth > self._limit:
                    raise ValidationFailed(
                        f"{self._label} is nested deeper than {self._limit} levels at byte "
                        f"{self.offset + index}, too deep to be GeoJSON")


def _deepest(brackets: bytes, depth: int, rounds: int = 8) -> int:
    """At least the greatest depth ``brackets`` reach from ``depth``; close to it, and cheap.

    Each round removes the innermost empty pairs (``[]``, ``{}``), which
    lowers the greatest depth by at most one; what is left, usually a
    handful of brackets, is then walked in C.
    """
    removed = 0
    for _ in range(rounds):
        before = len(brackets)
        for pair in (b"[]", b"{}"):
            shorter = brackets.replace(pair, b"")
            removed += len(shorter) < len(brackets)
            brackets = shorter
        if len(brackets) == before:
            break
    return removed + max(accumulate(map(_STEP.__getitem__, brackets), initial=depth))


class _Reader:
    """Consumes one file's parser events, keeping counts and never the document."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.top_type: str | None = None
        self.has_features = False
        self.tallies = {kind: Tally() for kind in (COLLECTION, FEATURE, BARE)}
        self.crs: Any = None
        self._crs_builder: Any = None
        self._crs_events = 0
        self._feature_type: str | None = None
        self._feature_geometry = False
        self._started = False

    def read(self, handle: DepthGuard) -> None:
        """Feed every event; positions are handled inline, being nearly all of them.

        A method call per number would triple the time a large file takes.
        """
        axis = 0
        tallies, coordinates, other = self.tallies, Role.COORDINATES, Role.OTHER
        for prefix, event, value in ijson.parse(handle, buf_size=BUFFER, use_float=True):
            kind, role = classify(prefix)
            if role is not coordinates:
                if role is not other:
                    self._on(tallies[kind], role, event, value)
                continue
            if event == "number":
                if axis < 2:
                    box = tallies[kind].bbox
                    if value < box[axis]:
                        box[axis] = value
                    if value > box[axis + 2]:
                        box[axis + 2] = value
                axis += 1
            elif event == "start_array":
                axis = 0
            elif event != "end_array" or axis == 1:
                self._bad_position(tallies[kind], event)
        if self._crs_builder is not None:
            self.crs = self._crs_builder.value

    def _bad_position(self, tally: Tally, event: str) -> NoReturn:
        if event == "end_array":
            self._fail_at(tally, "has a position with a single number")
        self._fail_at(tally, "has coordinates that are not numbers")

    def _on(self, tally: Tally, role: Role, event: str, value: Any) -> None:
        """One event; a member name matters only inside the crs, which is kept whole."""
        if event == "map_key" and role is not Role.CRS:
            return
        if role is Role.TOO_DEEP:
            self._fail(f"has member names too long to be GeoJSON (a path over {MAX_PATH} "
                       "characters)")
        if role is Role.TOP:
            self._top(event)
        elif role is Role.CRS:
            self._crs(event, value)
        elif role in (Role.FEATURES, Role.FEATURE, Role.FEATURE_TYPE):
            self._feature(tally, role, event, value)
        else:
            self._geometry(tally, role, event, value)

    def _top(self, event: str) -> None:
        if not self._started and event != "start_map":
            self._fail("is JSON but not an object, so not GeoJSON")
        self._started = True

    def _crs(self, event: str, value: Any) -> None:
        if self._crs_builder is None:
            self._crs_builder = ijson.ObjectBuilder()
        self._crs_events += 1
        if self._crs_events > MAX_CRS_EVENTS:
            self._fail("has a crs member too large to be a coordinate reference system")
        self._crs_builder.event(event, value)

    def _feature(self, tally: Tally, role: Role, event: str, value: Any) -> None:
        if role is Role.FEATURES:
            if event not in ("start_array", "end_array"):
                self._fail('has a "features" member that is not an array')
            self.has_features = True
        elif role is Role.FEATURE_TYPE:
            self._feature_type = value if event == "string" else None
        elif event == "start_map":
            tally.features += 1
            self._feature_type, self._feature_geometry = None, False
        elif event == "end_map":
            if self._feature_type != "Feature":
                self._fail_at(tally, f'is not a Feature (its "type" is {self._feature_type!r})')
            if not self._feature_geometry:
                tally.without_geometry += 1
        else:
            tally.features += 1
            self._fail_at(tally, "is not an object")

    def _geometry(self, tally: Tally, role: Role, event: str, value: Any) -> None:
        if role is Role.TOP_TYPE:
            if event != "string":
                self._fail('has a "type" member that is not a string')
            self.top_type = value
        elif role is Role.GEOMETRY:
            if event == "start_map":
                self._feature_geometry = True
            elif event not in ("null", "end_map"):
                self._fail_at(tally, "has a geometry that is neither an object nor null")
        elif event != "string" or value not in GEOMETRY_TYPES:
            self._fail_at(tally, f"has a geometry of unknown type {value!r}")
        elif role is Role.GEOMETRY_TYPE:
            tally.types[value] += 1

    def _fail_at(self, tally: Tally, problem: str) -> NoReturn:
        """Fail, naming the feature (or the geometry) the problem is in."""
        where = f"features[{tally.features - 1}]" if tally is self.tallies[COLLECTION] else (
            "the geometry")
        raise ValidationFailed(f"{self.label}: {where} {problem}")

    def _fail(self, problem: str) -> NoReturn:
        raise ValidationFailed(f"{self.label} {problem}")

    def summary(self) -> dict[str, Any]:
        """The file's summary once every event is read; checks what needs the whole object."""
        kind = self._kind()
        tally = self.tallies[kind]
        if kind == BARE:
            assert self.top_type is not None
            tally.features, tally.types = 1, Counter({self.top_type: 1})
        elif kind == FEATURE:
            tally.features = 1
            tally.without_geometry = 0 if tally.types else 1
        return {
            "file": self.label,
            "type": self.top_type,
            "feature_count": tally.features,
            "geometry_types": dict(sorted(tally.types.items())),
            "without_geometry": tally.without_geometry,
            "bbox": [float(v) for v in tally.bbox] if tally.bbox[0] != math.inf else None,
            "crs": self.crs,
        }

    def _kind(self) -> str:
        if self.top_type is None:
            self._fail('has no "type" member, so it is not GeoJSON')
        if self.top_type == COLLECTION:
            if not self.has_features:
                self._fail('is a FeatureCollection without a "features" array')
            return COLLECTION
        if self.top_type == FEATURE:
            return FEATURE
        if self.top_type in GEOMETRY_TYPES:
            return BARE
        self._fail(f"has type {self.top_type!r}, which is not a GeoJSON type")
