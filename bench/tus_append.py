"""What keeping a resumable upload's sha256 state costs, and what it saves.

Appends ``--mib`` MiB to a resumable upload in a temporary store, in
``--chunk-mib`` bodies as a tus client sends them (each body one record of
the offset and the serialised sha256 state), then times the two ways to the
whole file's digest after a restart: the recorded state (nothing read) and
a record lost (the whole file read again). Prints one JSON line::

    python bench/tus_append.py --mib 1024 --chunk-mib 16
"""

import argparse
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from geo_service.intake.append import Appender, Progress
from geo_service.store import UploadStore, open_store_at

UPLOAD_ID = "00000000-0000-4000-8000-000000000001"
MiB = 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--chunk-mib", type=int, default=16)
    parser.add_argument("--dir", default=None, help="where the temporary store goes")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="handoff-tus-bench-", dir=args.dir))
    try:
        print(json.dumps(_measure(open_store_at(root), args.mib, args.chunk_mib)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def _measure(store: UploadStore, mib: int, chunk_mib: int) -> dict[str, float]:
    info = {"purpose": "raw", "metadata": {}, "filename": "f", "content_type": "",
            "length": mib * MiB}
    store.create_resumable(UPLOAD_ID, "bench", info, Progress.empty().record())
    block = os.urandom(MiB)
    started = time.perf_counter()
    progress = Progress.empty()
    for _ in range(mib // chunk_mib):
        appender = Appender(store, UPLOAD_ID, mib * MiB)
        progress = appender.append(appender.settle(), progress.offset,
                                   [block] * chunk_mib, None, lambda: None)
    appended = time.perf_counter() - started
    started = time.perf_counter()
    recorded = Appender(store, UPLOAD_ID, mib * MiB).settle().sha256()
    from_state = time.perf_counter() - started
    store.save_progress(UPLOAD_ID, {})  # a record without a usable state
    started = time.perf_counter()
    reread = Appender(store, UPLOAD_ID, mib * MiB).settle().sha256()
    from_file = time.perf_counter() - started
    assert recorded == reread == _digest(block, mib)
    return {"mib": mib, "chunk_mib": chunk_mib, "append_mb_s": round(mib * MiB / appended / 1e6),
            "records": mib // chunk_mib, "digest_from_state_s": round(from_state, 4),
            "digest_rereading_file_s": round(from_file, 3)}


def _digest(block: bytes, count: int) -> str:
    digest = hashlib.sha256()
    for _ in range(count):
        digest.update(block)
    return digest.hexdigest()


if __name__ == "__main__":
    raise SystemExit(main())
