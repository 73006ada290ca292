"""Redis connections, built from `Settings` in one place."""

from __future__ import annotations

import redis

from grant_worker.config.settings import Settings


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


def delete_deployment(client: redis.Redis, settings: Settings) -> int:
    """Delete every key a deployment wrote: those under its key prefix, its queue and kombu's
    bindings of the queue (`_kombu.binding.{queue}`). For the demo, benchmarks and tests, which
    run on deployments of their own; returns how many keys were deleted."""
    deleted = 0
    for pattern in (f"{settings.grants_key_prefix}*", f"*{settings.grants_queue}*"):
        batch = list(client.scan_iter(pattern, count=1000))
        if batch:
            deleted += int(client.delete(*batch))
    return deleted
