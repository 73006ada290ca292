"""Where `celery -A grant_worker.worker.app worker` finds the worker's Celery app.

The app is built on first access from the environment's settings, so importing this module
reads no environment and opens no connection. The factory is `worker.process.app.create_app`.
"""

from __future__ import annotations

import threading

from celery import Celery

_default_app: Celery | None = None
_default_lock = threading.Lock()


def __getattr__(name: str) -> Celery:
    if name not in ("app", "celery"):
        raise AttributeError(name)
    global _default_app
    with _default_lock:
        if _default_app is None:
            from grant_worker.worker.exit_codes import settings_or_exit
            from grant_worker.worker.logs import configure_early_logging
            from grant_worker.worker.process.app import create_app

            # The settings may warn (an unknown GRANTS_* variable): in the worker's format.
            configure_early_logging()
            _default_app = create_app(settings_or_exit())
    return _default_app
