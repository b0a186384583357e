"""A chaos soak: the real stack under load while a nemesis kills and pauses its parts.

``python -m soak`` (``make soak``) starts the services in a temp folder under a
supervisor that restarts what dies, sends a steady mix of good, malformed,
cut-off and slow uploads, and meanwhile SIGKILLs or SIGSTOPs a random part
every few seconds. Afterwards a checker judges every upload tried: nothing
accepted may be lost, nothing refused may stay on disk, nothing may be
processed to two different results.
"""
