"""The nemesis' plan: which part to hit, how and when, drawn from a seeded RNG.

Pure, so a run can be replayed from its printed seed and the plan tested
without servers.
"""

import random
from dataclasses import dataclass

#: The parts the nemesis may hit. ``api-worker``/``geo-worker`` are children
#: of a gunicorn master; the others are whole components (``s3``, the object
#: store's server, joins them when the soak runs on one).
TARGETS = ("api-worker", "geo-worker", "worker", "redis", "gc")
ACTIONS = ("kill", "stop")


@dataclass(frozen=True)
class Fault:
    at: float
    target: str
    action: str
    pause: float  # seconds between SIGSTOP and SIGCONT; 0 for a kill

    @property
    def kind(self) -> str:
        return f"{self.action}:{self.target}"


def plan(seed: int, seconds: float, targets: tuple[str, ...] = TARGETS,
         every: tuple[float, float] = (3.0, 8.0),
         pause: tuple[float, float] = (0.5, 4.0)) -> list[Fault]:
    """Faults from a quiet start until ``seconds``, one every ``every`` seconds on average."""
    rng = random.Random(seed)
    faults: list[Fault] = []
    at = rng.uniform(*every)
    while at < seconds:
        action = rng.choice(ACTIONS)
        held = round(rng.uniform(*pause), 2) if action == "stop" else 0.0
        faults.append(Fault(round(at, 2), rng.choice(targets), action, held))
        at += rng.uniform(*every)
    return faults
