"""The minimum rate, on a clock and a body the test drives: no sockets, no waiting."""

import pytest

from api_service.pacing import MinimumRate, PacedBody, TooSlow


def test_a_window_at_the_rate_passes_and_starts_a_new_one() -> None:
    rate = MinimumRate(100, window=10)
    for _ in range(10):
        rate.record(1.0, 100)
    rate.record(9.0, 0)  # a new window: 9 s of silence is still within it
    with pytest.raises(TooSlow):
        rate.record(1.0, 0)


def test_a_trickler_is_cut_once_a_window_of_waiting_falls_short() -> None:
    rate = MinimumRate(1024, window=30)
    for _ in range(5):
        rate.record(5.0, 1)
    expected = r"sent 6 bytes in 30 s of waiting, below the minimum of 1KiB/s"
    with pytest.raises(TooSlow, match=expected):
        rate.record(5.0, 1)


def test_a_burst_after_silence_makes_up_the_average() -> None:
    rate = MinimumRate(1024, window=30)
    rate.record(29.0, 0)
    rate.record(1.0, 30 * 1024)


def test_a_pause_longer_than_the_window_starts_a_new_window() -> None:
    rate = MinimumRate(1024, window=30)
    rate.record(10.0, 10 * 1024)
    rate.record(45.0, 1448)  # silent 45 s (under the client timeout), then back: not cut
    for _ in range(5):
        rate.record(5.0, 1)  # a trickle from there on is judged over a window of its own
    with pytest.raises(TooSlow, match="sent 6 bytes in 30 s"):
        rate.record(5.0, 1)


def test_time_not_spent_waiting_for_the_client_does_not_count() -> None:
    rate = MinimumRate(1024, window=30)
    for _ in range(1000):  # bytes were waiting in the socket buffer: reads return at once
        rate.record(0.0, 1)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Body:
    """Each read takes ``seconds`` on the clock and gives ``data``, or raises ``error``."""

    def __init__(self, clock: _Clock, seconds: float, data: bytes,
                 error: Exception | None = None) -> None:
        self.clock, self.seconds, self.data, self.error = clock, seconds, data, error

    def read(self, size: int) -> bytes:
        self.clock.now += self.seconds
        if self.error is not None:
            raise self.error
        return self.data[:size]


def test_paced_body_times_each_read() -> None:
    clock = _Clock()
    body = PacedBody(_Body(clock, 5.0, b"x"), MinimumRate(1024, 30), clock)
    for _ in range(5):
        assert body.read(4096) == b"x"
    with pytest.raises(TooSlow):
        body.read(4096)


@pytest.mark.parametrize(("silence", "rate"), [(60.0, 1024), (5.0, 1)],
                         ids=["longer-than-the-window", "short"])
def test_a_silence_timeout_is_passed_on_as_it_is(silence: float, rate: int) -> None:
    """Silence past the window stays a timeout too, not a rate refusal."""
    clock = _Clock()
    error = TimeoutError("timed out")
    body = PacedBody(_Body(clock, silence, b"", error), MinimumRate(rate, 30), clock)
    with pytest.raises(TimeoutError) as caught:
        body.read(4096)
    assert caught.value is error
