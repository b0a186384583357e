"""The sweeper: deletes orphaned, abandoned and expired uploads, and says why.

The folder is ``gc/`` but the package is imported as ``handoff_gc``: a
top-level package named ``gc`` would be shadowed by Python's built-in
module (see ``package-dir`` in pyproject.toml).
"""
