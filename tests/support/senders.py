"""Brokers for unit tests of the announcements: one that records, one that is down."""

from typing import Any

from handoff.queue import QueueUnavailable


class RecordingSender:
    """Takes every message and remembers it; ``down_for`` names actors it refuses."""

    def __init__(self, down_for: frozenset[str] = frozenset()) -> None:
        self.sent: list[tuple[str, str, tuple[Any, ...]]] = []
        self.down_for = down_for

    def send(self, queue_name: str, actor_name: str, args: tuple[Any, ...]) -> str:
        if actor_name in self.down_for:
            raise QueueUnavailable("Connection refused")
        self.sent.append((queue_name, actor_name, args))
        return f"m-{len(self.sent)}"

    def actors(self) -> list[str]:
        return [actor for _, actor, _ in self.sent]
