"""EmulatorConfig: everything an emulator starts with (the CLI and tests build one)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from grant_worker.emulator.faults import FaultSettings
from grant_worker.emulator.ratelimit import RateLimitSettings
from grant_worker.emulator.seed import Seed

DEFAULT_TOKEN_LIFETIME_S = 86400.0  # what real tenants answer in expires_in


class EmulatorConfig(BaseModel):
    """Start-up settings; `reset` returns faults, rate limit and token lifetime to these.

    seed: the tenant; None means the packaged default seed.
    random_seed: makes fault draws, latency jitter and grant ids reproducible.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: Seed | None = None
    faults: FaultSettings = FaultSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    token_lifetime_s: float = Field(default=DEFAULT_TOKEN_LIFETIME_S, ge=0.0)
    # Other applications of the tenant spending its Management API bucket (requests/s).
    background_rps: float = Field(default=0.0, ge=0.0)
    random_seed: int | None = None
