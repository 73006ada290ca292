"""Redis connections, built from `Settings` in one place (every Redis client of the project:
streams, records, ledger, pace, locks, bridge, watchdog)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.sentinel import Sentinel

from grant_worker.config.settings import Settings
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.scripts import register

_CLIENT_OPTIONS: dict[str, Any] = {
    "decode_responses": True,
    "health_check_interval": 10,
    "socket_connect_timeout": 5,
    "socket_timeout": 30,
    "retry_on_timeout": True,
}


def make_redis(settings: Settings) -> redis.Redis:
    """A pooled client with health checks, so a restarted Redis is noticed and reconnected.

    Over `rediss://` the server's certificate is always verified. With
    `sentinel://host:port;sentinel://host:port` the client follows the master named by
    `GRANTS_SENTINEL_MASTER` through a failover (a demoted master's READONLY answer makes it
    look the new one up).
    """
    url = settings.redis_url.get_secret_value()
    if settings.uses_sentinel:
        return _sentinel_master(url, str(settings.grants_sentinel_master))
    tls: dict[str, str] = {"ssl_cert_reqs": "required"} if url.startswith("rediss://") else {}
    return redis.Redis.from_url(url, **tls, **_CLIENT_OPTIONS)


def sentinel_addresses(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """The sentinels of kombu's `sentinel://[user:password@]host:port[/db];…` form, and the
    master's credentials and database (from the first URL that names them)."""
    sentinels: list[tuple[str, int]] = []
    master: dict[str, Any] = {}
    for part in url.split(";"):
        parsed = urlsplit(part.strip())
        if parsed.scheme != "sentinel" or not parsed.hostname:
            raise ValueError("REDIS_URL: each part must read sentinel://host:port")
        sentinels.append((parsed.hostname, parsed.port or 26379))
        if parsed.password and "password" not in master:
            master["password"] = unquote(parsed.password)
            if parsed.username:
                master["username"] = unquote(parsed.username)
        db = parsed.path.strip("/")
        if db.isdigit() and "db" not in master:
            master["db"] = int(db)
    return sentinels, master


def _sentinel_master(url: str, master_name: str) -> redis.Redis:
    sentinels, master = sentinel_addresses(url)
    sentinel = Sentinel(sentinels, socket_connect_timeout=_CLIENT_OPTIONS["socket_connect_timeout"])
    return sentinel.master_for(master_name, **master, **_CLIENT_OPTIONS)


# kombu's sorted set of binding deadlines, shared by every deployment on the Redis.
KOMBU_BINDING_DEADLINES = "_kombu.binding_deadlines"


def delete_deployment(client: redis.Redis, settings: Settings) -> int:
    """Delete every key a deployment wrote: those under its key prefix, its queue, kombu's
    bindings of the queue (`_kombu.binding.{queue}`) and of its remote-control exchange
    (named after the prefix), and its members of `_kombu.binding_deadlines`. For the demo,
    benchmarks and tests, which run on deployments of their own; returns how many keys were
    deleted."""
    deleted = 0
    prefix, queue = settings.grants_key_prefix, settings.grants_queue
    keys = Keys(prefix)
    for pattern in (keys.pattern, f"*{queue}*", f"_kombu.*{prefix}*"):
        batch = list(client.scan_iter(pattern, count=1000))
        if batch:
            deleted += int(client.delete(*batch))
    control = keys.control_pidbox
    forget = register(client, __package__, "forget_binding_deadlines.lua")
    forget(keys=[KOMBU_BINDING_DEADLINES], args=[control, f"reply.{control}"])
    return deleted
