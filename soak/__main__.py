"""``python -m soak``: HANDOFF_SOAK_SECONDS (default 600), HANDOFF_SOAK_SEED to replay.

HANDOFF_SOAK_STORE=s3 runs the stack on an embedded SeaweedFS, which the
nemesis kills and pauses too (default ``file``: a folder).
"""

import logging
import os
import random
import sys

from soak.objects import chosen_store
from soak.run import report, run


def main(seconds: float | None = None, seed: int | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    seconds = seconds or float(os.environ.get("HANDOFF_SOAK_SECONDS", "600"))
    if seed is None:
        seed = int(os.environ.get("HANDOFF_SOAK_SEED") or random.SystemRandom().randrange(2**32))
    store = chosen_store()
    print(f"soak: {seconds:.0f}s, store {store}, seed {seed} "
          f"(HANDOFF_SOAK_SEED={seed} replays it)", flush=True)
    verdict, faults = run(seconds, seed, store=store)
    print(report(verdict, faults, seed), flush=True)
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
