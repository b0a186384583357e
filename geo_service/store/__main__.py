"""Store commands for deployment: ``python -m geo_service.store relocate``.

``relocate`` is the geo pod's init container: a store that releases before
named replicas kept at the volume's root (``HANDOFF_UPLOADS_ROOT``) moves
into this replica's folder (``HANDOFF_REPLICA``) before anything opens it.
Exit status 1 when an entry is in both places (nothing is overwritten), 2
for a configuration problem.
"""

import argparse
import sys

from geo_service.store.filesystem import Conflict, relocate
from handoff.config import ConfigError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geo_service.store")
    parser.add_argument("verb", choices=["relocate"])
    parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if not settings.replica:
        print("HANDOFF_REPLICA is not set: the store is already the volume's", file=sys.stderr)
        return 0
    try:
        for name in relocate(settings.uploads_root, settings.replica):
            print(f"moved {name} into {settings.replica}/")
    except Conflict as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
