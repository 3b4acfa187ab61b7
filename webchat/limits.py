"""Abuse limits of the chat server: message rate per resident, connections per address, allowed origins."""

from __future__ import annotations

import ipaddress
import time
from collections import defaultdict, deque
from typing import Any, Callable
from urllib.parse import urlsplit

from store.errors import ConfigError
from store.settings import Settings


def parse_rate(text: str, name: str = "CIM_RESIDENT_RATE_LIMIT") -> tuple[int, float] | None:
    """`N/SECONDS` → (N, SECONDS), or None for `off`."""
    value = str(text).strip().lower()
    if value == "off":
        return None
    count, sep, seconds = value.partition("/")
    try:
        n, s = int(count), float(seconds)
    except ValueError:
        n, s = 0, 0.0
    if not sep or n < 1 or s <= 0:
        raise ConfigError(f"{name} must be N/SECONDS (e.g. 10/10) or off, not {text!r}")
    return n, s


def parse_limit(text: str, name: str) -> int | None:
    """A positive whole number, or None for `off`."""
    value = str(text).strip().lower()
    if value == "off":
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"{name} must be a positive whole number or off, not {text!r}")
    return n


class RateLimiter:
    """A sliding window: at most `count` events per key in any `seconds` (monotonic clock)."""

    def __init__(self, rate: tuple[int, float] | None, now: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.now = now
        self._events: dict[Any, deque[float]] = defaultdict(deque)
        self._checks = 0

    #: Every this many checks, keys whose window has emptied are dropped (chats that ended or were left).
    SWEEP_EVERY = 10_000

    def allow(self, key: Any) -> bool:
        if self.rate is None:
            return True
        count, seconds = self.rate
        now = self.now()
        self._checks += 1
        if self._checks % self.SWEEP_EVERY == 0:
            for stale in [k for k, w in self._events.items() if not w or w[-1] <= now - seconds]:
                del self._events[stale]
        window = self._events[key]
        while window and window[0] <= now - seconds:
            window.popleft()
        if len(window) >= count:
            return False
        window.append(now)
        return True

    def forget(self, key: Any) -> None:
        self._events.pop(key, None)


class ConnectionCounter:
    """Open sockets per client address, refused beyond the limit."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._open: dict[str, int] = defaultdict(int)

    def acquire(self, address: str) -> bool:
        if self.limit is not None and self._open[address] >= self.limit:
            return False
        self._open[address] += 1
        return True

    def release(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]

    def count(self, address: str) -> int:
        return self._open.get(address, 0)


def parse_proxies(text: str) -> frozenset[str]:
    proxies = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            proxies.add(str(ipaddress.ip_address(part)))
        except ValueError:
            raise ConfigError(f"CIM_TRUSTED_PROXIES: {part!r} is not an IP address") from None
    return frozenset(proxies)


class ClientAddress:
    """Who is on the other end: the peer address, or the X-Forwarded-For hop a trusted proxy reports."""

    def __init__(self, trusted_proxies: frozenset[str]) -> None:
        self.trusted = trusted_proxies

    def of(self, request: Any) -> str:
        peer = request.remote or "unknown"
        if peer not in self.trusted:
            return peer
        # rightmost address not belonging to our own proxies: earlier entries are the client's to forge
        hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",") if h.strip()]
        for hop in reversed(hops):
            if hop not in self.trusted:
                return hop
        return peer

    def scheme(self, request: Any) -> str:
        if (request.remote or "") in self.trusted:
            proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
            if proto in ("http", "https"):
                return proto
        return request.scheme


def parse_origins(text: str) -> frozenset[str]:
    """The configured allow-list, normalised to scheme://host[:port]; `*` is refused."""
    origins = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        if part == "*":
            raise ConfigError("CIM_ALLOWED_ORIGINS must list origins; '*' would let any site use the chat")
        split = urlsplit(part)
        if split.scheme not in ("http", "https") or not split.netloc or split.path not in ("", "/"):
            raise ConfigError(f"CIM_ALLOWED_ORIGINS: {part!r} is not an origin such as https://www.szczecin.eu")
        origins.add(f"{split.scheme}://{split.netloc}".lower())
    return frozenset(origins)


class OriginPolicy:
    """The Socket.IO origin check: the allow-list plus the server's own origin; never any origin."""

    def __init__(self, allowed: frozenset[str], address: ClientAddress) -> None:
        self.allowed = allowed
        self.address = address

    def __call__(self, origin: str | None, environ: dict) -> bool:
        if not origin:
            return True  # not a browser (browsers always send Origin on WebSocket and CORS requests)
        origin = origin.lower()
        if origin in self.allowed:
            return True
        request = environ.get("aiohttp.request")
        if request is None:
            return False
        return origin == f"{self.address.scheme(request)}://{request.host}".lower()

    @classmethod
    def from_settings(cls, settings: Settings, address: ClientAddress) -> "OriginPolicy":
        return cls(parse_origins(settings.allowed_origins), address)
