"""Build the objects a worker process needs from `Settings`, once, at the edge."""

from __future__ import annotations

import redis

from config.settings import Settings
from tasks.handler import GrantHandler
from tasks.keys import Keys
from tasks.ledger import DeliveryLedger
from tasks.locks import RequestLocks
from tasks.outcomes import OutcomeRecorder
from tasks.provision import make_provisioner


def make_redis(settings: Settings) -> redis.Redis:
    """A pooled client with health checks, so a restarted Redis is noticed and reconnected."""
    return redis.Redis.from_url(
        settings.redis_url.get_secret_value(),
        decode_responses=True,
        health_check_interval=10,
        socket_connect_timeout=5,
        socket_timeout=30,
        retry_on_timeout=True,
    )


def make_recorder(settings: Settings, client: redis.Redis) -> OutcomeRecorder:
    return OutcomeRecorder(
        client,
        Keys(settings.grants_key_prefix),
        record_ttl_s=settings.grants_record_ttl_s,
        stream_maxlen=settings.grants_stream_maxlen,
    )


def make_handler(settings: Settings, client: redis.Redis | None = None) -> GrantHandler:
    """The request handler of one worker process, sharing one Redis pool and HTTP session."""
    settings.require_auth0()
    client = client or make_redis(settings)
    keys = Keys(settings.grants_key_prefix)
    return GrantHandler(
        provisioner=make_provisioner(settings, client),
        recorder=make_recorder(settings, client),
        ledger=DeliveryLedger(client, keys, ttl_s=settings.grants_record_ttl_s),
        # The lock lapses before the message could be redelivered by the visibility timeout.
        locks=RequestLocks(client, keys, ttl_s=settings.task_hard_time_limit_s),
        max_deliveries=settings.grants_max_deliveries,
    )
