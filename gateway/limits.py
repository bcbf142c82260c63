"""Limits at the edges (docs/security.md, "Limits").

Rates are token buckets: a key may spend ``per_minute`` attempts at once and gets them
back at ``per_minute`` a minute. The clock is injected, so the tests step time instead of
sleeping. A bucket that has refilled completely is the same as no bucket, so it is
dropped: a limiter holds only the keys seen within the last minute, and never more than
``max_keys`` of them, however many distinct addresses knock.

Why not the ``limits`` package: its in-memory moving window keeps an empty list for every
key it has ever seen (measured: 20,000 addresses left 20,000 entries after expiry), and
its storage reads the wall clock and starts a timer thread per burst, which a test cannot
step.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.requests import HTTPConnection

from gateway.errors import GatewayError

Clock = Callable[[], float]


class LimitExceeded(GatewayError):
    """A limit refused this attempt; ``retry_after_s`` is None when waiting alone will not
    help (a cap on live calls: one of them has to end first)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def retry_after(self) -> int:
        """Whole seconds for a ``Retry-After`` header (RFC 9110 section 10.2.3)."""
        return max(1, math.ceil(self.retry_after_s or 60.0))


class RateLimiter:
    """``per_minute`` attempts a minute per key, as a token bucket of that capacity."""

    def __init__(
        self, per_minute: int, *, clock: Clock = time.monotonic, max_keys: int = 100_000
    ) -> None:
        if per_minute < 1 or max_keys < 1:
            raise ValueError("per_minute and max_keys must be at least 1")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens per second
        self.clock = clock
        self.max_keys = max_keys
        # key -> (tokens, when they were counted), least recently touched first
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def hit(self, key: str) -> float:
        """Spend one attempt: 0.0 if allowed, else the seconds until one is available."""
        now = self.clock()
        self._forget_full(now)
        tokens, then = self._buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - then) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            # a flood of distinct keys: the least recent is forgotten (it gets a full
            # bucket back), so memory stays bounded and the cost lands on the flooder
            self._buckets.popitem(last=False)
        return wait

    def _forget_full(self, now: float) -> None:
        # least recently touched first: once one is not yet full, none after it can be
        # older than a full refill, so the scan stops there (amortised O(1) per hit)
        while self._buckets:
            key, (tokens, then) = next(iter(self._buckets.items()))
            if tokens + (now - then) * self.rate < self.capacity:
                return
            del self._buckets[key]


def check_rate(limiter: RateLimiter | None, key: str, what: str) -> None:
    """Raise ``LimitExceeded`` naming ``what`` when ``limiter`` refuses ``key``."""
    if limiter is None:
        return
    wait = limiter.hit(key)
    if wait > 0:
        per_minute = int(limiter.capacity)
        raise LimitExceeded(
            f"too many {what} ({per_minute} a minute); try again in {math.ceil(wait)} s", wait
        )


def client_address(conn: HTTPConnection) -> str:
    """The key of a client: its IP address, or its /64 for IPv6 (one host there usually
    owns the whole /64, so single addresses would cost an attacker nothing).

    Behind a proxy this is the proxy's address unless ``trusted_proxies`` is set, in which
    case ``X-Forwarded-For`` has already been applied (``gateway.app``)."""
    host = conn.client.host if conn.client is not None else ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
