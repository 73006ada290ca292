"""The Celery worker process: its app and bootsteps, the kombu transport it runs on, the
intake bridge, crash recovery, the watchdog, shutdown, health and metrics.

Nothing outside the process imports this package but the entry points
(`worker.app` for `celery -A`, `grants worker`) and the test helper that starts a worker.
"""
