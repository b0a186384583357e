"""A WSGI app that reads its body through body_reader and says what it got.

Served by gunicorn with the product's settings for tests/integration/handoff/test_request_body.py.
"""

import hashlib

from flask import Flask, jsonify, request

from handoff.server.request_body import IncompleteBody, body_reader
from handoff.units import CHUNK_SIZE

app = Flask(__name__)


@app.post("/echo")
def echo():
    reader = body_reader(request.environ)
    size = request.args.get("read", CHUNK_SIZE, type=int)
    digest, total, reads = hashlib.sha256(), 0, 0
    incomplete = False
    try:
        while chunk := reader.read(size):
            assert len(chunk) <= size
            digest.update(chunk)
            total += len(chunk)
            reads += 1
    except IncompleteBody:
        incomplete = True
    return jsonify(size=total, sha256=digest.hexdigest(), reads=reads, incomplete=incomplete,
                   direct=type(reader).__name__ == "_SocketBody")
