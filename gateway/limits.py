"""Limits at the edges (docs/security.md, "Limits"): call attempts a minute and live calls
per client address and per widget token (browser calls) or per caller number (phone
calls), credential requests and demo page views per client address.

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

import hashlib
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from types import TracebackType

from starlette.requests import HTTPConnection

from gateway.config import LimitSettings
from gateway.errors import GatewayError

Clock = Callable[[], float]
# WebSocket close code for a refused call (4000-4999 are the application's own, RFC 6455
# section 7.4.2); 4429 echoes HTTP's 429 Too Many Requests
CLOSE_LIMITED = 4429


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
        self.refused = 0  # attempts refused since start (for /metrics)

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
            self.refused += 1
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


class LiveCounter:
    """Open calls per key, at most ``cap`` each; a key leaves when its last call ends, so
    the table is never larger than the calls in progress."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open: dict[str, int] = {}
        self.refused = 0

    def __len__(self) -> int:
        return len(self._open)

    def acquire(self, key: str) -> bool:
        count = self._open.get(key, 0)
        if count >= self.cap:
            self.refused += 1
            return False
        self._open[key] = count + 1
        return True

    def release(self, key: str) -> None:
        count = self._open.pop(key, 0) - 1
        if count > 0:
            self._open[key] = count


class CallSlot:
    """A browser call's places in the live counters, given back when the call ends."""

    def __init__(self, held: list[tuple[LiveCounter, str]]) -> None:
        self._held = held

    def release(self) -> None:
        for counter, key in self._held:
            counter.release(key)
        self._held = []

    def __enter__(self) -> CallSlot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def token_key(token: str) -> str:
    """A short, fixed-size key for a widget token (the token itself is ~200 characters)."""
    return hashlib.blake2b(token.encode(), digest_size=12).hexdigest()


class EdgeLimits:
    """Every limit of ``settings``; ``enabled=False`` lets everything through."""

    def __init__(
        self, settings: LimitSettings, *, enabled: bool = True, clock: Clock = time.monotonic
    ) -> None:
        self.enabled = enabled

        def rate(per_minute: int) -> RateLimiter | None:
            if not enabled:
                return None
            return RateLimiter(per_minute, clock=clock, max_keys=settings.max_tracked_keys)

        self.calls_by_address = rate(settings.calls_per_minute_per_address)
        self.calls_by_token = rate(settings.calls_per_minute_per_token)
        self.calls_by_caller = rate(settings.calls_per_minute_per_caller)
        self.tokens_by_address = rate(settings.tokens_per_minute_per_address)
        self.demo_pages = rate(settings.demo_pages_per_minute_per_address)
        self.live_by_address = LiveCounter(settings.live_calls_per_address)
        self.live_by_token = LiveCounter(settings.live_calls_per_token)
        self.live_per_caller = settings.live_calls_per_caller
        self.live_by_caller_refused = 0

    def refusals(self) -> dict[str, int]:
        """Attempts refused since start, by limit (``voxgate_limit_refusals`` on /metrics)."""
        rates = {"calls_per_address": self.calls_by_address,
                 "calls_per_token": self.calls_by_token,
                 "calls_per_caller": self.calls_by_caller,
                 "tokens_per_address": self.tokens_by_address,
                 "demo_pages_per_address": self.demo_pages}
        counts = {name: limiter.refused if limiter else 0 for name, limiter in rates.items()}
        counts["live_calls_per_address"] = self.live_by_address.refused
        counts["live_calls_per_token"] = self.live_by_token.refused
        counts["live_calls_per_caller"] = self.live_by_caller_refused
        return counts

    def check_browser_attempt(self, address: str) -> None:
        """Before the token is checked, so that guessing tokens costs attempts too."""
        check_rate(self.calls_by_address, address, "call attempts from this address")

    def admit_browser(self, address: str, token: str | None) -> CallSlot:
        """A browser call with a valid (or, in development, no) token: the per-token rate,
        then a live place per address and per token, held until the slot is released."""
        if not self.enabled:
            return CallSlot([])
        key = token_key(token) if token else None
        if key is not None:
            check_rate(self.calls_by_token, key, "calls with this widget token")
        if not self.live_by_address.acquire(address):
            raise LimitExceeded(
                f"too many live calls from this address ({self.live_by_address.cap})"
            )
        held = [(self.live_by_address, address)]
        if key is not None:
            if not self.live_by_token.acquire(key):
                CallSlot(held).release()
                raise LimitExceeded(
                    f"too many live calls with this widget token ({self.live_by_token.cap})"
                )
            held.append((self.live_by_token, key))
        return CallSlot(held)

    def admit_phone(self, caller: str, live: int) -> None:
        """A phone call from ``caller``, who has ``live`` calls in progress already."""
        if not self.enabled:
            return
        check_rate(self.calls_by_caller, caller, "calls from this number")
        if live >= self.live_per_caller:
            self.live_by_caller_refused += 1
            raise LimitExceeded(f"too many live calls from this number ({self.live_per_caller})")

    def check_credentials(self, address: str) -> None:
        check_rate(self.tokens_by_address, address, "credential requests from this address")
