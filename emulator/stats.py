"""Counters of what reached the emulator, for the admin API (pure).

Read with `GET /__emulator/stats`; the keys are a contract with the test suites:

    requests_total        Management API + /oauth/token requests received
    requests_by_status    {"201": n, ...} replies sent (dropped connections are not replies)
    requests_by_route     {"POST /api/v2/client-grants": n, ...}
    rate_limited          429s sent
    dropped               connections closed without a reply (drop faults, lost replies)
    injected_errors       5xx sent by the error fault
    commit_lost           requests carried out whose reply was then lost
    hung                  requests held for hang_s
    late_writes           writes held and carried out late (`LateWrite`)
    tokens_issued         successful /oauth/token replies
    grants                grants stored now
    posts_by_grant_key    {"owner|audience|subject_type": n}: every POST /client-grants
                          received, counted before any rate limit or fault; owner is the
                          client_id or "default_for:third_party_clients"
    in_flight             requests being handled now
    max_in_flight         the most requests handled at once since the last reset
    background_calls      calls of the tenant's other applications (--background-rps)
    background_rate_limited  of those, how many met a 429
    outage_replies        calls failed by an outage window (admin API)
"""

from __future__ import annotations

from collections import Counter
from typing import Any


class Stats:
    def __init__(self) -> None:
        self._zero()
        self.in_flight = 0
        self.max_in_flight = 0

    def reset(self) -> None:
        """Zero the counters; requests still in flight stay counted as in flight."""
        self._zero()
        self.max_in_flight = self.in_flight

    def _zero(self) -> None:
        self.requests_total = 0
        self.requests_by_status: Counter[str] = Counter()
        self.requests_by_route: Counter[str] = Counter()
        self.posts_by_grant_key: Counter[str] = Counter()
        self.rate_limited = 0
        self.dropped = 0
        self.injected_errors = 0
        self.commit_lost = 0
        self.hung = 0
        self.late_writes = 0
        self.tokens_issued = 0
        self.background_calls = 0
        self.background_rate_limited = 0
        self.outage_replies = 0

    def begin(self, route: str) -> None:
        """A request arrived on `route` ("METHOD /path-pattern")."""
        self.requests_total += 1
        self.requests_by_route[route] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def end(self, status: int | None) -> None:
        """The request is over: replied with `status`, or dropped (None)."""
        self.in_flight -= 1
        if status is None:
            self.dropped += 1
        else:
            self.requests_by_status[str(status)] += 1

    def snapshot(self, grants: int) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "requests_by_status": dict(self.requests_by_status),
            "requests_by_route": dict(self.requests_by_route),
            "rate_limited": self.rate_limited,
            "dropped": self.dropped,
            "injected_errors": self.injected_errors,
            "commit_lost": self.commit_lost,
            "hung": self.hung,
            "late_writes": self.late_writes,
            "tokens_issued": self.tokens_issued,
            "grants": grants,
            "posts_by_grant_key": dict(self.posts_by_grant_key),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "background_calls": self.background_calls,
            "background_rate_limited": self.background_rate_limited,
            "outage_replies": self.outage_replies,
        }
