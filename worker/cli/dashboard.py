"""The `grants dashboard` command."""

from __future__ import annotations

import click

from grant_worker.worker.cli.base import fail_usage, load_settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8808, show_default=True, type=click.IntRange(0, 65535))
def dashboard(host: str, port: int) -> None:
    """The operator's web page: outcomes, Auth0 calls, batches, dead letters, search.

    Listens on loopback unless told otherwise; any other address needs
    GRANTS_DASHBOARD_TOKEN, which every visitor then logs in with.
    """
    # Imported here: every `grants` command loads this module, only this one needs the web stack.
    import uvicorn

    from grant_worker.worker.dashboard.app import create_app
    from grant_worker.worker.dashboard.security import BindRefused, bind_address

    settings = load_settings()
    try:
        app = create_app(settings, host=host)
    except BindRefused as exc:
        fail_usage(str(exc))
    click.echo(f"dashboard on http://{host}:{port}/", err=True)
    uvicorn.run(
        app,
        host=bind_address(host),
        port=port,
        log_level="warning",
        server_header=False,
        # The app believes only GRANTS_DASHBOARD_TRUSTED_PROXIES' forwarded headers, itself.
        proxy_headers=False,
    )
