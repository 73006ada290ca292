"""Redis connections, built from `Settings` in one place."""

from __future__ import annotations

import redis

from grant_worker.config.settings import Settings
from grant_worker.tasks.keys import Keys


def make_redis(settings: Settings) -> redis.Redis:
    """A pooled client with health checks, so a restarted Redis is noticed and reconnected.

    Over `rediss://` the server's certificate is always verified.
    """
    url = settings.redis_url.get_secret_value()
    tls: dict[str, str] = {"ssl_cert_reqs": "required"} if url.startswith("rediss://") else {}
    return redis.Redis.from_url(
        url,
        **tls,
        decode_responses=True,
        health_check_interval=10,
        socket_connect_timeout=5,
        socket_timeout=30,
        retry_on_timeout=True,
    )


# kombu keeps the deadlines of expiring bindings (remote control's reply queues) in one sorted
# set shared by every deployment on the Redis: remove only this deployment's members, and the
# set itself once it is empty, in one step so that a concurrent writer is never undone.
_FORGET_BINDING_DEADLINES = """
for _, member in ipairs(ARGV) do redis.call('ZREM', KEYS[1], member) end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('DEL', KEYS[1]) end
return 1
"""
KOMBU_BINDING_DEADLINES = "_kombu.binding_deadlines"


def delete_deployment(client: redis.Redis, settings: Settings) -> int:
    """Delete every key a deployment wrote: those under its key prefix, its queue, kombu's
    bindings of the queue (`_kombu.binding.{queue}`) and of its remote-control exchange
    (named after the prefix), and its members of `_kombu.binding_deadlines`. For the demo,
    benchmarks and tests, which run on deployments of their own; returns how many keys were
    deleted."""
    deleted = 0
    prefix, queue = settings.grants_key_prefix, settings.grants_queue
    for pattern in (f"{prefix}*", f"*{queue}*", f"_kombu.*{prefix}*"):
        batch = list(client.scan_iter(pattern, count=1000))
        if batch:
            deleted += int(client.delete(*batch))
    control = f"{Keys(prefix).control_exchange}.pidbox"
    client.eval(_FORGET_BINDING_DEADLINES, 1, KOMBU_BINDING_DEADLINES, control, f"reply.{control}")
    return deleted
