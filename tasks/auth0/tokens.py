"""Management API access tokens: a static one, or client credentials cached until near expiry.

The cache holds no HTTP code: it is handed the function that fetches a token (built by
`tasks.auth0.api`, where HTTP errors are translated) at each call, so that the thread that
happens to refresh does it under its own pace slot and retry budget.

Thread-safety: one fetch at a time; threads that need a token while another thread fetches
wait for that fetch and then use its result. Tokens are kept as `SecretStr`, so neither a
`repr` nor a log line of these objects shows one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pydantic import SecretStr

# Renew this long before the token expires (auth0-python uses 10 s). For short-lived tokens the
# leeway is at most half the lifetime, so a token is always used for a while.
DEFAULT_LEEWAY_S = 30.0


@dataclass(frozen=True)
class IssuedToken:
    """What `/oauth/token` answered."""

    access_token: SecretStr
    expires_in_s: float
    # The granted scopes, space-separated, as /oauth/token answered (None when it did not say).
    scope: str | None = None


Fetch = Callable[[], IssuedToken]


class TokenSource(Protocol):
    """Where the Management API bearer token comes from."""

    @property
    def refreshable(self) -> bool:
        """True when a 401 is worth one new token and one more try."""
        ...

    def current(self, fetch: Fetch) -> str:
        """A token believed valid; calls `fetch` (and lets its errors through) when needed."""
        ...

    def invalidate(self, stale: str) -> None:
        """Forget `stale` (refused with a 401) unless another thread has replaced it already."""
        ...


class ReloadableToken:
    """A static token read from a source that may change (AUTH0_TOKEN_FILE): a 401 is final
    until the file is rewritten and the secrets reloaded."""

    refreshable = False

    def __init__(self, read: Callable[[], SecretStr | None]) -> None:
        self._read = read

    def current(self, fetch: Fetch) -> str:
        token = self._read()
        return token.get_secret_value() if token is not None else ""

    def invalidate(self, stale: str) -> None:
        return None

    def __repr__(self) -> str:
        return "ReloadableToken(token=SecretStr('**********'))"


def renew_at(issued_at: float, expires_in_s: float, leeway_s: float) -> float:
    """Clock time after which a token issued at `issued_at` is no longer used (pure)."""
    lifetime = max(0.0, expires_in_s)
    return issued_at + lifetime - min(max(0.0, leeway_s), lifetime / 2)


class TokenCache:
    """Client-credentials tokens, cached until `leeway_s` before they expire."""

    refreshable = True

    def __init__(
        self, *, leeway_s: float = DEFAULT_LEEWAY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._leeway_s = leeway_s
        self._clock = clock
        self._lock = threading.Lock()
        self._token: SecretStr | None = None
        self._renew_at = 0.0

    def current(self, fetch: Fetch) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                # The clock is read before the request: the lifetime counts from then.
                requested_at = self._clock()
                issued = fetch()
                self._token = issued.access_token
                self._renew_at = renew_at(requested_at, issued.expires_in_s, self._leeway_s)
            return self._token.get_secret_value()

    def invalidate(self, stale: str) -> None:
        with self._lock:
            if self._token is not None and self._token.get_secret_value() == stale:
                self._token = None

    def forget(self) -> None:
        """Drop the cached token, whatever it is (credentials or scopes changed)."""
        with self._lock:
            self._token = None

    def replace(self, issued: IssuedToken) -> None:
        """Use `issued` (just fetched by the breaker's probe) from now on."""
        with self._lock:
            self._token = issued.access_token
            self._renew_at = renew_at(self._clock(), issued.expires_in_s, self._leeway_s)

    @property
    def cached(self) -> bool:
        """True while a token is held and not yet due for renewal."""
        with self._lock:
            return self._token is not None and self._clock() < self._renew_at

    def __repr__(self) -> str:
        return f"TokenCache(leeway_s={self._leeway_s}, cached={self._token is not None})"
