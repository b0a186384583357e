"""The worker's side: broker, actors, one job run, its processor call, completion hooks, metrics."""
