"""A Celery app that only sends: what a producer needs to write `grants.create` messages.

It carries the configuration producers and workers share (`tasks.celery_base`) and nothing of
the worker process: no task body, no bootsteps, no signals. `GrantClient` uses it to build
messages exactly as Celery would; a pipeline that prefers Celery's own API may call
`send_task("grants.create", kwargs={"request": …}, task_id=request_id)` on it.
"""

from __future__ import annotations

from celery import Celery

from grant_worker.config.settings import Settings
from grant_worker.tasks.celery_base import base_config


def make_producer_app(settings: Settings) -> Celery:
    """A sending-only Celery app for the deployment `settings` names."""
    app = Celery("grant_worker.producer", set_as_current=False)
    app.config_from_object(base_config(settings))
    return app
