"""Redis connections, built from `Settings` in one place."""

from __future__ import annotations

import redis

from config.settings import Settings


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
