"""GeoJSON files with arrays nested very deep in the places a reader meets them.

Each document puts ``[`` * depth + ``]`` * depth in one position; the unit
tests of the geojson processor and the worker's integration test use them.
"""

DEEP = b"{deep}"
# Where the deep value sits: a template with DEEP standing for it.
POSITIONS = {
    "top-level array": DEEP,
    "property value": b'{"type": "FeatureCollection", "features": [{"type": "Feature", '
                      b'"properties": {"p": {deep}}, "geometry": null}]}',
    "inside features": b'{"type": "FeatureCollection", "features": [{deep}]}',
    "another top-level member": b'{"type": "Point", "coordinates": [0, 0], "x": {deep}}',
    "coordinates": b'{"type": "Point", "coordinates": {deep}}',
}


def nested(position: str, depth: int) -> bytes:
    """The document of ``position`` with arrays ``depth`` deep in its place."""
    return POSITIONS[position].replace(DEEP, b"[" * depth + b"]" * depth)


def too_deep_at(document: bytes, limit: int) -> int:
    """The offset of the bracket that takes ``document`` past ``limit`` levels.

    Counted plainly: the documents here have no brackets inside strings.
    """
    depth = 0
    for offset, byte in enumerate(document):
        depth += (byte in b"[{") - (byte in b"]}")
        if depth > limit:
            return offset
    raise ValueError("the document is not that deep")
