"""Per-second activity counters in Redis: what the dashboard's charts draw.

Prometheus counters live in each process; the dashboard needs the fleet's figures second by
second for the last minutes, readable with a handful of small reads at any stream length. Each
event adds one to a field `{second}:{series}` of the hash of its minute (`Keys.activity`); the
hash expires after `RETENTION_S`, so the footprint stays a few dozen small hashes.

Counting is best-effort by design: a lost increment costs one dot on a chart, never an outcome,
so Redis errors here are logged and swallowed. For the same reason a worker counts its
Management API calls later (`count_later`): each event is put in its own second at once, in
memory, and a thread of the counter writes them every `FLUSH_EVERY_S`, so that counting costs a
request no round trip of its own (a worker killed meanwhile loses that fraction of a second).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis
import requests

from grant_worker.tasks.keys import Keys

log = logging.getLogger(__name__)

RETENTION_S = 20 * 60
CALL_SERIES = "call"
RATE_LIMITED_SERIES = "call:429"
MANAGEMENT_PATH = "/api/v2/"
# How often counts made with `count_later` are written (s).
FLUSH_EVERY_S = 0.5


def outcome_series(status: str) -> str:
    return f"outcome:{status}"


def slot(epoch_s: float) -> tuple[int, int]:
    """(epoch minute, second within it) of a moment."""
    whole = int(epoch_s)
    return whole // 60, whole % 60


def read_activity(
    client: redis.Redis, keys: Keys, *, start: int, seconds: int, names: list[str]
) -> dict[str, list[int]]:
    """Counts per second of each series in `names` for the `seconds` from `start` (epoch s).

    One HGETALL per minute touched, pipelined. A field that is not `{second}:{series}` with a
    whole count is left out: one lost dot, as with a lost increment, never a lost chart.
    """
    end = start + seconds - 1
    minutes = range(slot(start)[0], slot(end)[0] + 1)
    pipe = client.pipeline(transaction=False)
    for minute in minutes:
        pipe.hgetall(keys.activity(minute))
    series = {name: [0] * seconds for name in names}
    for minute, counts in zip(minutes, pipe.execute(), strict=True):
        for key, value in counts.items():
            second, _, name = str(key).partition(":")
            if name not in series or not second.isdigit():
                continue
            try:
                count = int(value)
            except ValueError:
                continue
            index = minute * 60 + int(second) - start
            if 0 <= index < seconds:
                series[name][index] += count
    return series


class ActivityCounter:
    """Adds events to the per-second counters, one pipelined round trip each."""

    def __init__(
        self, client: redis.Redis, keys: Keys, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client
        self._keys = keys
        self._clock = clock
        # (epoch minute, field) → events counted with `count_later` and not yet written.
        self._pending: Counter[tuple[int, str]] = Counter()
        self._pending_lock = threading.Lock()
        self._flusher: threading.Thread | None = None

    def field_of(self, series: str) -> tuple[str, str]:
        """(hash, field) counting one event of `series` now: for a script that counts it in
        the same step as the event itself (the recorder's)."""
        minute, second = slot(self._clock())
        return self._keys.activity(minute), f"{second}:{series}"

    def count(self, *series: str) -> None:
        minute, second = slot(self._clock())
        key = self._keys.activity(minute)
        try:
            pipe = self._client.pipeline(transaction=False)
            for name in series:
                pipe.hincrby(key, f"{second}:{name}", 1)
            pipe.expire(key, RETENTION_S)
            pipe.execute()
        except redis.RedisError as exc:
            log.debug("activity counter not written: %s", type(exc).__name__)

    def count_later(self, *series: str) -> None:
        """Count one event of each of `series` in this second, written within `FLUSH_EVERY_S`."""
        minute, second = slot(self._clock())
        with self._pending_lock:
            for name in series:
                self._pending[(minute, f"{second}:{name}")] += 1
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._flush_forever, name="activity-flush", daemon=True
                )
                self._flusher.start()
                atexit.register(self.flush)

    def flush(self) -> None:
        """Write the counts made with `count_later` so far: one pipelined round trip."""
        with self._pending_lock:
            pending, self._pending = self._pending, Counter()
        if not pending:
            return
        try:
            pipe = self._client.pipeline(transaction=False)
            for (minute, field), events in pending.items():
                pipe.hincrby(self._keys.activity(minute), field, events)
            for minute in {minute for minute, _ in pending}:
                pipe.expire(self._keys.activity(minute), RETENTION_S)
            pipe.execute()
        except redis.RedisError as exc:
            log.debug("activity counters not written: %s", type(exc).__name__)

    def _flush_forever(self) -> None:
        while True:
            time.sleep(FLUSH_EVERY_S)
            self.flush()

    def count_calls_of(self, session: requests.Session, *, later: bool = False) -> None:
        """Count every answered Management API call of `session` (and its 429s); `later`:
        with `count_later` (a worker's requests then make no round trip for it).

        A `requests` response hook sees each HTTP answer, retries included, without touching
        the client's code; the token endpoint is not a Management API call and is left out.
        """
        count = self.count_later if later else self.count

        def on_response(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            if MANAGEMENT_PATH not in (response.request.path_url or ""):
                return
            if response.status_code == 429:
                count(CALL_SERIES, RATE_LIMITED_SERIES)
            else:
                count(CALL_SERIES)

        session.hooks["response"].append(on_response)
