"""The processors that misbehave on purpose (``tests/support/plugins``), for a child's path.

The folder holds a module and the ``.dist-info`` that registers its entry
points; only processes started with :func:`pythonpath` find them.
"""

import os

PLUGINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plugins")


def pythonpath() -> str:
    """``PYTHONPATH`` with the test plugins first, keeping whatever was set."""
    return os.pathsep.join(filter(None, [PLUGINS, os.environ.get("PYTHONPATH")]))
