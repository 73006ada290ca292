"""The token cache: expiry with an injected clock, one fetch at a time, no secret in a repr."""

from __future__ import annotations

import threading

import pytest
from pydantic import SecretStr

from grant_worker.tasks.auth0.tokens import IssuedToken, ReloadableToken, TokenCache, renew_at
from grant_worker.tasks.errors import NetworkError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Issuer:
    """Hands out token-1, token-2, … with a fixed lifetime."""

    def __init__(self, lifetime_s: float = 100.0) -> None:
        self.lifetime_s = lifetime_s
        self.count = 0

    def __call__(self) -> IssuedToken:
        self.count += 1
        return IssuedToken(SecretStr(f"token-{self.count}"), self.lifetime_s)


def test_a_token_is_renewed_leeway_seconds_before_it_expires() -> None:
    assert renew_at(issued_at=50.0, expires_in_s=86400.0, leeway_s=30.0) == 86420.0


def test_the_leeway_is_at_most_half_of_a_short_lifetime() -> None:
    assert renew_at(issued_at=0.0, expires_in_s=4.0, leeway_s=30.0) == 2.0


def test_a_token_without_lifetime_is_due_at_once() -> None:
    assert renew_at(issued_at=10.0, expires_in_s=0.0, leeway_s=30.0) == 10.0


def test_the_cache_fetches_once_and_reuses_the_token_until_it_is_due() -> None:
    clock, issuer = Clock(), Issuer(lifetime_s=100.0)
    cache = TokenCache(leeway_s=10.0, clock=clock)
    assert cache.current(issuer) == "token-1"
    clock.now += 89.0
    assert cache.current(issuer) == "token-1"
    assert issuer.count == 1


def test_the_cache_fetches_a_new_token_once_the_old_one_is_due() -> None:
    clock, issuer = Clock(), Issuer(lifetime_s=100.0)
    cache = TokenCache(leeway_s=10.0, clock=clock)
    cache.current(issuer)
    clock.now += 90.0
    assert cache.current(issuer) == "token-2"
    assert issuer.count == 2


def test_invalidating_the_refused_token_makes_the_next_call_fetch() -> None:
    clock, issuer = Clock(), Issuer()
    cache = TokenCache(clock=clock)
    stale = cache.current(issuer)
    cache.invalidate(stale)
    assert cache.current(issuer) == "token-2"


def test_invalidating_a_token_another_thread_already_replaced_keeps_the_new_one() -> None:
    clock, issuer = Clock(), Issuer()
    cache = TokenCache(clock=clock)
    stale = cache.current(issuer)
    cache.invalidate(stale)
    cache.current(issuer)  # another thread refreshed
    cache.invalidate(stale)  # a late 401 with the old token
    assert cache.current(issuer) == "token-2"
    assert issuer.count == 2


def test_a_failed_fetch_leaves_no_token_and_lets_its_error_through() -> None:
    cache = TokenCache(clock=Clock())

    def failing() -> IssuedToken:
        raise NetworkError("token: could not connect", ambiguous=False)

    with pytest.raises(NetworkError):
        cache.current(failing)
    assert not cache.cached
    assert cache.current(Issuer()) == "token-1"


def test_threads_that_need_a_token_during_a_fetch_wait_for_it_instead_of_fetching() -> None:
    cache = TokenCache(clock=Clock())
    fetching = threading.Event()
    release = threading.Event()
    issuer = Issuer()

    def slow_fetch() -> IssuedToken:
        fetching.set()
        assert release.wait(5)
        return issuer()

    results: list[str] = []
    first = threading.Thread(target=lambda: results.append(cache.current(slow_fetch)))
    first.start()
    assert fetching.wait(5)
    others = [
        threading.Thread(target=lambda: results.append(cache.current(slow_fetch))) for _ in range(7)
    ]
    for thread in others:
        thread.start()
    release.set()
    for thread in [first, *others]:
        thread.join(5)
    assert results == ["token-1"] * 8
    assert issuer.count == 1


def test_the_cache_repr_shows_no_token() -> None:
    cache = TokenCache(clock=Clock())
    token = cache.current(Issuer())
    assert token not in repr(cache)


def test_a_static_token_is_never_fetched_and_not_refreshable() -> None:
    static = ReloadableToken(lambda: SecretStr("static-secret-token"))
    issuer = Issuer()
    assert static.current(issuer) == "static-secret-token"
    assert issuer.count == 0
    assert not static.refreshable
    assert "static-secret-token" not in repr(static)
