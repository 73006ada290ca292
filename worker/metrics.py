"""Exposing the Prometheus metrics of `tasks.metrics` over HTTP."""

from __future__ import annotations

from prometheus_client import start_http_server


def serve_metrics(port: int, addr: str = "0.0.0.0") -> None:
    """Serve `/metrics` on `port` from a daemon thread of this process."""
    start_http_server(port, addr=addr)
