"""The Celery configuration producers and workers share: JSON only, one queue, one broker.

A producer (`GrantClient`, or any Celery app sending `grants.create`) needs this much to write a
message the worker reads; the worker's own app (`worker.process.app`) builds on it with delivery
guarantees, the guarded transport and its pool. Kept here, below both, so that a producer never
builds the worker's app.
"""

from __future__ import annotations

import ssl
from typing import Any

from grant_worker.config.settings import Settings
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.inspection import TASK_NAME


def base_config(settings: Settings) -> dict[str, Any]:
    """Celery settings both sides agree on; `broker_url` is `REDIS_URL` as it is."""
    keys = Keys(settings.grants_key_prefix)
    redis_url = settings.redis_url.get_secret_value()
    uses_tls = redis_url.startswith("rediss://")
    transport_options: dict[str, Any] = {
        "socket_timeout": 30,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": 10,
        # One list per queue, so that a worker takes a message with one atomic move into a
        # list of its own (`worker.process.broker.transport`): kombu's per-priority lists would
        # need a BRPOP over several keys, which has no moving form. Priorities are not used.
        "priority_steps": [0],
    }
    if settings.uses_sentinel:
        transport_options["master_name"] = settings.grants_sentinel_master
    return {
        "broker_url": redis_url,
        # kombu's default for rediss:// is to skip certificate checks; ours is to verify.
        "broker_use_ssl": {"ssl_cert_reqs": ssl.CERT_REQUIRED} if uses_tls else None,
        "broker_transport_options": transport_options,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "event_serializer": "json",
        "task_ignore_result": True,
        "task_default_queue": settings.grants_queue,
        "task_routes": {TASK_NAME: {"queue": settings.grants_queue}},
        # Remote control (`celery inspect`) on an exchange of this deployment's own: its kombu
        # bindings then name the deployment and are deleted with it (`delete_deployment`).
        "control_exchange": keys.control_exchange,
    }
