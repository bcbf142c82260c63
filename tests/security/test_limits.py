"""The token buckets behind every limit, on a stepped clock (no sleeping), and the client
address they are keyed on."""

from __future__ import annotations

import pytest
from starlette.requests import HTTPConnection

from gateway.config import LimitSettings
from gateway.limits import (
    EdgeLimits,
    LimitExceeded,
    RateLimiter,
    check_rate,
    client_address,
)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_one_more_per_refill() -> None:
    clock = FakeClock()
    limiter = RateLimiter(6, clock=clock)  # 6 a minute: one back every 10 s
    assert [limiter.hit("a") for _ in range(6)] == [0.0] * 6
    assert limiter.hit("a") == pytest.approx(10.0)
    clock.now += 4.0
    assert limiter.hit("a") == pytest.approx(6.0)  # refused attempts do not cost more
    clock.now += 6.0
    assert limiter.hit("a") == 0.0
    assert limiter.hit("a") == pytest.approx(10.0)
    assert limiter.hit("b") == 0.0, "another key has its own bucket"


def test_check_rate_names_the_limit_and_when_to_come_back() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock)
    check_rate(limiter, "a", "call attempts from this address")
    check_rate(limiter, "a", "call attempts from this address")
    with pytest.raises(LimitExceeded) as refused:
        check_rate(limiter, "a", "call attempts from this address")
    assert str(refused.value) == (
        "too many call attempts from this address (2 a minute); try again in 30 s"
    )
    assert refused.value.retry_after == 30
    check_rate(None, "a", "anything")  # no limiter: no limit


def test_many_distinct_addresses_do_not_pile_up() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock)
    for i in range(20_000):
        limiter.hit(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
        clock.now += 0.01  # 20,000 addresses in 200 s
    # an address that spent one attempt of 10 a minute has it back 6 s later and is
    # forgotten: only the last 6 s of addresses (600) are remembered
    assert 595 <= len(limiter) <= 601
    clock.now += 60.0
    limiter.hit("one more")
    assert len(limiter) == 1


def test_a_flood_past_max_keys_forgets_the_oldest() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, clock=clock, max_keys=100)
    limiter.hit("first")
    assert limiter.hit("first") > 0
    for i in range(100):
        limiter.hit(f"flood-{i}")
    assert len(limiter) == 100
    assert limiter.hit("first") == 0.0, "forgotten, so it starts with a full bucket"


def conn(host: str | None) -> HTTPConnection:
    client = (host, 5000) if host is not None else None
    return HTTPConnection({"type": "http", "client": client, "headers": []})


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # the same /64: the same key
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("testclient", "testclient"),
        (None, "unknown"),
    ],
)
def test_the_client_address_key(host: str | None, key: str) -> None:
    assert client_address(conn(host)) == key


def test_edge_limits_keep_nothing_once_calls_end() -> None:
    clock = FakeClock()
    limits = EdgeLimits(LimitSettings(live_calls_per_address=2, live_calls_per_token=1),
                        clock=clock)
    for i in range(5_000):  # 5,000 callers, one call each, over 50 minutes
        address = f"10.1.{i // 256}.{i % 256}"
        limits.check_browser_attempt(address)
        with limits.admit_browser(address, f"token-{i}"):
            pass
        clock.now += 0.6
    assert len(limits.live_by_address) == len(limits.live_by_token) == 0
    assert limits.calls_by_address is not None and limits.calls_by_token is not None
    assert len(limits.calls_by_address) < 20 and len(limits.calls_by_token) < 20


def test_a_refused_live_place_gives_back_what_it_took() -> None:
    limits = EdgeLimits(LimitSettings(live_calls_per_address=5, live_calls_per_token=1))
    held = limits.admit_browser("10.0.0.1", "t")
    with pytest.raises(LimitExceeded, match="live calls with this widget token"):
        limits.admit_browser("10.0.0.1", "t")
    assert len(limits.live_by_address) == 1  # the refused call's address place was returned
    held.release()
    assert len(limits.live_by_address) == 0
    limits.admit_browser("10.0.0.1", "t").release()


def test_disabled_limits_let_everything_through() -> None:
    limits = EdgeLimits(LimitSettings(live_calls_per_address=1), enabled=False)
    for _ in range(100):
        limits.check_browser_attempt("10.0.0.1")
        limits.admit_browser("10.0.0.1", "t")  # never released, never refused
        limits.admit_phone("+1555", live=50)
        limits.check_credentials("10.0.0.1")
    assert limits.demo_pages is None
