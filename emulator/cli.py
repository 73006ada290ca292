"""`grants emulator` / `python -m grant_worker.emulator`: run the local Auth0 Management API."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NoReturn

import click

from grant_worker.emulator.config import DEFAULT_TOKEN_LIFETIME_S, EmulatorConfig
from grant_worker.emulator.errors import ApiError
from grant_worker.emulator.faults import FaultSettings
from grant_worker.emulator.ratelimit import TIERS, RateLimitSettings
from grant_worker.emulator.seed import load_seed
from grant_worker.emulator.server import serve_forever
from grant_worker.emulator.state import Emulator

RATE = click.FloatRange(0.0, 1.0)


class _Refused(click.ClickException):
    """A usage or configuration error: exit 2. Raised, not printed, so that under `grants
    emulator` the group prints it with the prefix of every other error of the command."""

    exit_code = 2


def _fail(message: str) -> NoReturn:
    raise _Refused(message)


def _announce(emulator: Emulator, host: str, port: int) -> None:
    # The credentials are the point of this print: they belong to the local emulator only.
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    worker = emulator.worker_client
    click.echo(f"Auth0 emulator listening on http://{host}:{port}", err=True)
    click.echo(f"AUTH0_DOMAIN=http://{shown_host}:{port}")
    click.echo(f"AUTH0_CLIENT_ID={worker.client_id}")
    click.echo(f"AUTH0_CLIENT_SECRET={worker.client_secret}")
    click.echo(f"Admin API: http://{shown_host}:{port}/__emulator/stats  (Ctrl-C stops)", err=True)


@click.command("emulator", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8787,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--seed",
    "seed_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Tenant seed file (YAML or JSON); default: a demo tenant.",
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    help="Management API requests per second (one tenant-wide bucket). Default: the --tier's.",
)
@click.option(
    "--burst", type=click.IntRange(min=1), help="Bucket size (default: one second's worth)."
)
@click.option(
    "--tier",
    type=click.Choice(sorted(TIERS)),
    default="enterprise",
    show_default=True,
    help="Auth0's published limits (free 2/s burst 10, self-service 16/50, enterprise 50/50, "
    "enterprise-plus 100/100), used when --rate-limit is not given.",
)
@click.option(
    "--reset-semantics",
    type=click.Choice(["full", "next"]),
    default="full",
    show_default=True,
    help="What x-ratelimit-reset means: when the bucket is full again, or when one more call "
    "is allowed.",
)
@click.option(
    "--background-rps",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Other applications of the tenant spending its bucket, in requests per second.",
)
@click.option(
    "--retry-after/--no-retry-after",
    default=False,
    show_default=True,
    help="Send Retry-After on 429 (Auth0 does not document it).",
)
@click.option(
    "--rate-limit-token-endpoint", is_flag=True, help="Count /oauth/token against the bucket too."
)
@click.option("--latency-ms", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option(
    "--jitter-ms",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Latency varies uniformly by ± this much.",
)
@click.option(
    "--fault-5xx-rate",
    type=RATE,
    default=0.0,
    show_default=True,
    help="Share of calls answered with a 5xx and not carried out.",
)
@click.option("--fault-5xx-status", type=click.IntRange(500, 599), default=503, show_default=True)
@click.option(
    "--fault-drop-rate",
    type=RATE,
    default=0.0,
    show_default=True,
    help="Share of calls whose connection is closed without a reply.",
)
@click.option(
    "--fault-commit-lost-rate",
    type=RATE,
    default=0.0,
    show_default=True,
    help="Share of calls carried out whose reply is then lost.",
)
@click.option(
    "--commit-lost-reply",
    type=click.Choice(["error", "drop"]),
    default="error",
    show_default=True,
    help="How a lost reply looks: a 5xx or a closed connection.",
)
@click.option(
    "--fault-hang-rate",
    type=RATE,
    default=0.0,
    show_default=True,
    help="Share of calls held for --hang-s before being carried out.",
)
@click.option("--hang-s", type=click.FloatRange(min=0), default=30.0, show_default=True)
@click.option(
    "--faults-on-token-endpoint", is_flag=True, help="Apply latency and faults to /oauth/token too."
)
@click.option(
    "--token-lifetime-s",
    type=click.FloatRange(min=0),
    default=DEFAULT_TOKEN_LIFETIME_S,
    show_default=True,
)
@click.option("--random-seed", type=int, help="Make faults, jitter and grant ids reproducible.")
@click.option("--access-log", is_flag=True, help="Log every request (slower).")
def emulator(
    seed_path: Path | None,
    host: str,
    port: int,
    rate_limit: float | None,
    burst: int | None,
    tier: str,
    reset_semantics: str,
    background_rps: float,
    retry_after: bool,
    rate_limit_token_endpoint: bool,
    latency_ms: float,
    jitter_ms: float,
    fault_5xx_rate: float,
    fault_5xx_status: int,
    fault_drop_rate: float,
    fault_commit_lost_rate: float,
    commit_lost_reply: str,
    fault_hang_rate: float,
    hang_s: float,
    faults_on_token_endpoint: bool,
    token_lifetime_s: float,
    random_seed: int | None,
    access_log: bool,
) -> None:
    """Run a local Auth0 Management API (client grants) for development, demos and tests.

    Prints the AUTH0_* settings a worker needs. Runtime control: /__emulator/ (see
    emulator/admin.py).
    """
    if burst is not None and rate_limit is None:
        _fail("--burst needs --rate-limit")
    if rate_limit is None:
        # Real tenants always have a limit: the tier's.
        rate_limit, burst = TIERS[tier]
    try:
        config = EmulatorConfig(
            seed=load_seed(seed_path) if seed_path else None,
            faults=FaultSettings(
                latency_ms=latency_ms,
                jitter_ms=jitter_ms,
                error_rate=fault_5xx_rate,
                error_status=fault_5xx_status,
                drop_rate=fault_drop_rate,
                commit_lost_rate=fault_commit_lost_rate,
                commit_lost_reply=commit_lost_reply,
                hang_rate=fault_hang_rate,
                hang_s=hang_s,
                apply_to_token_endpoint=faults_on_token_endpoint,
            ),
            rate_limit=RateLimitSettings(
                rate_per_s=rate_limit,
                burst=burst,
                retry_after=retry_after,
                apply_to_token_endpoint=rate_limit_token_endpoint,
                reset_semantics=reset_semantics,
            ),
            background_rps=background_rps,
            token_lifetime_s=token_lifetime_s,
            random_seed=random_seed,
        )
        state = Emulator(config)
        state.worker_client  # noqa: B018 - fail now, not after binding, if the seed has none
    except (ValueError, LookupError, ApiError) as exc:  # incl. pydantic.ValidationError
        _fail(str(exc))
    if access_log:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        serve_forever(
            state,
            host,
            port,
            access_log=access_log,
            on_ready=lambda bound: _announce(state, host, bound),
        )
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc}")
