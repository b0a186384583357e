"""The built-in processors, registered like any other in ``pyproject.toml``.

They follow the public contract in :mod:`handoff.processors` and are found
through the same ``handoff.processors`` entry points as a plugin's, so
nothing here is a registry.
"""
