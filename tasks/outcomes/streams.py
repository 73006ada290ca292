"""Typed reads of Redis streams.

redis-py types its answers for sync and async clients and for bytes and text at once; our
clients decode responses, so each entry is `(id, {field: value})` of strings. The casts live
here, once, instead of at every caller.
"""

from __future__ import annotations

from typing import cast

import redis

Entry = tuple[str, dict[str, str]]


def entries_between(
    client: redis.Redis, key: str, *, low: str = "-", high: str = "+", count: int | None = None
) -> list[Entry]:
    """XRANGE: entries from `low` to `high` (prefix an id with `(` to exclude it), oldest first."""
    return cast(list[Entry], client.xrange(key, min=low, max=high, count=count))


def entries_before(
    client: redis.Redis, key: str, *, high: str = "+", low: str = "-", count: int
) -> list[Entry]:
    """XREVRANGE: entries from `high` down to `low` (`(` excludes an id), newest first."""
    return cast(list[Entry], client.xrevrange(key, max=high, min=low, count=count))


def newest_id(client: redis.Redis, key: str) -> str:
    """The id of the stream's last entry, or `0-0` for an empty or missing stream."""
    newest = cast(list[Entry], client.xrevrange(key, count=1))
    return newest[0][0] if newest else "0-0"


def entries_after(
    client: redis.Redis, key: str, last_id: str, *, count: int, block_ms: int
) -> list[Entry]:
    """XREAD: entries after `last_id`, waiting up to `block_ms` for the first."""
    answer = cast(
        list[tuple[str, list[Entry]]] | None,
        client.xread({key: last_id}, count=count, block=block_ms),
    )
    return [entry for _stream, entries in answer or [] for entry in entries]


def group_entries(
    client: redis.Redis,
    key: str,
    group: str,
    consumer: str,
    *,
    count: int,
    block_ms: int | None,
    pending: bool = False,
) -> list[Entry]:
    """XREADGROUP: new entries for `consumer` of `group`; with `pending`, the entries it was
    given before and has not acknowledged, oldest first (never blocks)."""
    answer = cast(
        list[tuple[str, list[Entry]]] | None,
        client.xreadgroup(
            group,
            consumer,
            {key: "0" if pending else ">"},
            count=count,
            block=None if pending else block_ms,
        ),
    )
    return [entry for _stream, entries in answer or [] for entry in entries]


def claim_stale(
    client: redis.Redis, key: str, group: str, consumer: str, *, min_idle_ms: int, count: int
) -> list[Entry]:
    """XAUTOCLAIM: entries another consumer took and left unacknowledged for `min_idle_ms`."""
    answer = cast(
        list[object],
        client.xautoclaim(key, group, consumer, min_idle_time=min_idle_ms, count=count),
    )
    return cast(list[Entry], answer[1])
