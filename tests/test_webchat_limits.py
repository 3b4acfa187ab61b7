"""The abuse limits' own logic: sliding-window rate, connection counting, setting parsers."""

from __future__ import annotations

import pytest

from store.errors import ConfigError
from webchat.limits import ConnectionCounter, RateLimiter, parse_limit, parse_origins, parse_rate


class FakeTime:
    """A hand-moved monotonic clock for the limiter (a plain function, not a mock of a component)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize("text", ["", "10", "10/", "/10", "a/b", "0/10", "-1/10", "10/0", "10/-5", "off/10"])
def test_malformed_rates_are_refused(text):
    with pytest.raises(ConfigError):
        parse_rate(text)


def test_rates_and_limits_parse():
    assert parse_rate("10/10") == (10, 10.0) and parse_rate(" OFF ") is None
    assert parse_limit("50", "X") == 50 and parse_limit("off", "X") is None
    with pytest.raises(ConfigError):
        parse_limit("-3", "X")
    assert parse_origins("https://A.example, http://b.example:8080/") == {"https://a.example", "http://b.example:8080"}


def test_the_window_slides():
    now = FakeTime()
    limiter = RateLimiter((3, 10.0), now=now)
    assert [limiter.allow("chat") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("other chat")
    now.t += 9.9
    assert not limiter.allow("chat")
    now.t += 0.2
    assert limiter.allow("chat")


def test_idle_keys_are_swept():
    now = FakeTime()
    limiter = RateLimiter((1, 1.0), now=now)
    for i in range(100):
        limiter.allow(i)
    now.t += 5
    for _ in range(RateLimiter.SWEEP_EVERY):
        limiter.allow("busy")
        now.t += 1
    assert set(limiter._events) <= {"busy"}


def test_connection_counter():
    counter = ConnectionCounter(2)
    assert counter.acquire("a") and counter.acquire("a") and not counter.acquire("a")
    assert counter.acquire("b")
    counter.release("a")
    assert counter.count("a") == 1 and counter.acquire("a")
    unlimited = ConnectionCounter(None)
    assert all(unlimited.acquire("a") for _ in range(1000))
