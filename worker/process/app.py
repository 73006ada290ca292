"""The Celery app: configuration derived from `Settings`, the task and the worker's extras.

`celery -A grant_worker.worker.app worker` finds `app` here; it is built on first access (module
`__getattr__`), so importing this module reads no environment and opens no connection.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from celery import Celery

from grant_worker.config.settings import Settings
from grant_worker.tasks.celery_base import base_config
from grant_worker.tasks.delivery.receipt import LazyReceiptDesk
from grant_worker.tasks.errors import RequestInvalid
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.task import LazyHandler, register_create_task
from grant_worker.tasks.wiring import make_handler
from grant_worker.worker.process.broker.transport import (
    MALFORMED_HANDLER_OPTION,
    broker_url,
    register_malformed_handler,
)

UNACKED_MUTEX_EXPIRE_S = 10


def celery_config(settings: Settings) -> dict[str, Any]:
    """The worker's Celery settings: the shared base, plus at-least-once delivery through the
    guarded transport and the pool sized by the settings."""
    config = base_config(settings)
    keys = Keys(settings.grants_key_prefix)
    config["broker_transport_options"].update(
        {
            # Above the longest a task can run, so a working delivery is never duplicated.
            "visibility_timeout": settings.visibility_timeout_s,
            # How often unacknowledged messages of dead workers are put back: with the
            # throttle at 1, every interval really scans (kombu's default scans 1 in 10).
            "unacked_restore_interval": settings.grants_restore_interval_s,
            "unacked_restore_throttle": 1,
            # kombu keeps unacknowledged messages under one global key by default; under our
            # prefix, deployments sharing a Redis never restore each other's messages.
            "unacked_key": keys.unacked,
            "unacked_index_key": keys.unacked_index,
            "unacked_mutex_key": keys.unacked_mutex,
            # kombu holds this mutex while it restores; a worker killed while holding it would
            # block every restore for kombu's default 300 s.
            "unacked_mutex_expire": UNACKED_MUTEX_EXPIRE_S,
        }
    )
    config.update(
        {
            "broker_url": broker_url(settings.redis_url.get_secret_value()),
            "broker_connection_retry_on_startup": True,
            "broker_connection_max_retries": None,  # a worker waits out a Redis restart
            # Redis errors that are not connection errors to kombu (OOM, READONLY) restart the
            # consumer instead of ending the worker with "Unrecoverable error".
            "broker_channel_error_retry": True,
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            # Time limits only bind the prefork pool; the threads pool relies on the retry
            # budget and HTTP timeouts, which the limits are derived from.
            "task_soft_time_limit": settings.task_soft_time_limit_s,
            "task_time_limit": settings.task_hard_time_limit_s,
            # One message per thread: nothing waits in a local buffer while its visibility
            # timeout runs.
            "worker_prefetch_multiplier": 1,
            # Pool, size and queue live here, not in command-line flags, so that
            # `celery -A grant_worker.worker.app worker` and `grants worker` are the same worker.
            "worker_pool": "threads",
            "worker_concurrency": settings.grants_concurrency,
            "worker_consumer": "grant_worker.worker.process.consumer:InspectingConsumer",
            "worker_hijack_root_logger": False,
            "worker_redirect_stdouts": False,
            # Flower's task counters and `celery events` need them (GRANTS_TASK_EVENTS).
            "worker_send_task_events": settings.grants_task_events,
        }
    )
    return config


def create_app(settings: Settings) -> Celery:
    """A Celery app for `settings`, with `grants.create` registered."""
    app = Celery("grant_worker", set_as_current=False)
    app.config_from_object(celery_config(settings))
    app.grants_settings = settings
    handler = LazyHandler(lambda: make_handler(settings))
    app.grants_handler = handler
    # Receipt (delivery count, refusals, `expired`, `poison`) needs Redis only, never Auth0.
    receipt = LazyReceiptDesk(settings)
    app.grants_receipt = receipt
    register_create_task(app, handler, receipt)
    app.grants_malformed_handler = _dead_letter_malformed(receipt)  # held by the app
    app.conf.broker_transport_options[MALFORMED_HANDLER_OPTION] = register_malformed_handler(
        f"grants-{uuid.uuid4().hex}", app.grants_malformed_handler
    )
    from grant_worker.worker.process import startup
    from grant_worker.worker.process.steps import add_steps

    add_steps(app)
    startup.connect_signals()
    return app


def _dead_letter_malformed(receipt: LazyReceiptDesk) -> Callable[[str, str], None]:
    def record(raw: str, reason: str) -> None:
        receipt().reject(
            raw, fallback_id=f"malformed-{uuid.uuid4().hex}", error=RequestInvalid([reason])
        )

    return record
