"""``python -m bench``: the upload byte path measured against baselines in one run.

The product's claim is relative: the API relays uploads nearly as fast as a
direct upload to the geo service, much faster than the obvious Flask app,
with flat memory and no disk writes of its own. Absolute numbers depend on
the machine (and, on a shared host, on the minute), so every variant runs in
the same process, against the same geo service, interleaved round by round,
and the result is reported as ratios. ``docs/benchmarks.md`` explains the
method and records a run.
"""
