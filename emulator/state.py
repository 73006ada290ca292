"""Emulator: the state one running emulator holds, and the run-time changes to it.

The HTTP handlers (`emulator.app`) and the admin API (`emulator.admin`) act on one instance.
Everything runs on the server's event loop, so no locking is needed here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from typing import Literal

from grant_worker.emulator.config import EmulatorConfig
from grant_worker.emulator.faults import FaultSettings, LateWrite
from grant_worker.emulator.grants import ClientGrants
from grant_worker.emulator.ratelimit import RateLimitSettings, TokenBucket, make_bucket
from grant_worker.emulator.seed import ClientSpec, ResourceServerSpec, Seed, default_seed
from grant_worker.emulator.stats import Stats
from grant_worker.emulator.store import GrantStore
from grant_worker.emulator.tenant import Tenant
from grant_worker.emulator.tokens import TokenIssuer

OutageMode = Literal["error", "drop", "hang"]

# Seeded grants are applied as if sent to this host; only a Management API audience listed in
# `management_api.extra_identifiers` can be seeded, since the real host is not known yet.
_SEED_HOST = "seed.invalid"


class Emulator:
    """Tenant, grants, token issuer, rate limit, faults and counters of one emulator."""

    seed: Seed
    tenant: Tenant
    store: GrantStore
    grants: ClientGrants
    faults: FaultSettings
    rate_limit: RateLimitSettings
    bucket: TokenBucket
    token_lifetime_s: float
    # Other applications of the tenant spending its Management API bucket (requests/s).
    background_rps: float
    # Writes to hold and carry out late (`hold_writes`), each with the holds it has left.
    late_writes: list[tuple[LateWrite, int]]
    # An outage: until this monotonic time every Auth0 call fails in `outage_mode`.
    outage_until: float
    outage_mode: OutageMode

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.rng = random.Random(self.config.random_seed)
        self.issuer = TokenIssuer()
        self.stats = Stats()
        self._id_rng = random.Random(self.rng.random())
        self._install(self.config.seed or default_seed())
        self._restore_settings()

    # -- settings changed at run time -----------------------------------------------------

    def _restore_settings(self) -> None:
        self.faults = self.config.faults
        self.set_rate_limit(self.config.rate_limit)
        self.token_lifetime_s = self.config.token_lifetime_s
        self.background_rps = self.config.background_rps
        self.late_writes = []
        self.end_outage()

    # -- tenant faults (admin API) ------------------------------------------------------------

    def start_outage(self, seconds: float, mode: OutageMode = "error") -> None:
        """Every Auth0 call (token included) fails for `seconds`: 503, dropped or hanging."""
        self.outage_until = time.monotonic() + seconds
        self.outage_mode = mode

    def hold_writes(self, late: LateWrite) -> None:
        """The next `late.count` writes of `late.method` are carried out late (`LateWrite`)."""
        self.late_writes.append((late, late.count))

    def take_late_write(self, method: str) -> LateWrite | None:
        """The hold the write just arrived (of `method`) falls under, if one is armed."""
        for index, (late, left) in enumerate(self.late_writes):
            if late.method == method:
                if left <= 1:
                    del self.late_writes[index]
                else:
                    self.late_writes[index] = (late, left - 1)
                self.stats.late_writes += 1
                return late
        return None

    def end_outage(self) -> None:
        self.outage_until = 0.0
        self.outage_mode = "error"

    def outage_left_s(self) -> float:
        return max(0.0, self.outage_until - time.monotonic())

    def rotate_secret(self, client_id: str, new_secret: str) -> None:
        """The client's secret changes; tokens already issued stay valid until they expire.

        Raises LookupError for an unknown client."""
        client = self._client(client_id)
        self.tenant.clients[client_id] = client.model_copy(update={"client_secret": new_secret})

    def revoke_tokens(self) -> None:
        """Every token issued so far is refused from now on (401)."""
        self.issuer.rotate_key()

    def set_management_scopes(self, client_id: str, scopes: Iterable[str]) -> None:
        """The scopes the client's Management API grant holds (tokens issued from now on).

        Raises LookupError for an unknown client."""
        client = self._client(client_id)
        self.tenant.clients[client_id] = client.model_copy(
            update={"management_scopes": tuple(scopes)}
        )

    def _client(self, client_id: str) -> ClientSpec:
        client = self.tenant.clients.get(client_id)
        if client is None:
            raise LookupError(f"no client {client_id!r}")
        return client

    def set_rate_limit(self, settings: RateLimitSettings) -> None:
        """Replace the limit; the new bucket starts full."""
        self.rate_limit = settings
        self.bucket = make_bucket(settings)

    def set_faults(self, **changes: object) -> FaultSettings:
        """Change some fault settings. Raises pydantic.ValidationError, leaving them as they
        were."""
        self.faults = self.faults.updated(**changes)
        return self.faults

    # -- the tenant -----------------------------------------------------------------------

    def _install(self, seed: Seed) -> None:
        """Switch to `seed`, all or nothing. Raises ApiError if a seeded grant breaks a rule."""
        tenant = Tenant(seed)
        store = GrantStore(self._id_rng)
        grants = ClientGrants(tenant, store, seed.dialect)
        _apply_seed_grants(grants, seed)
        self.seed, self.tenant, self.store, self.grants = seed, tenant, store, grants

    def reseed(self, seed: Seed) -> None:
        """Replace the tenant and drop every grant, then create the seed's own grants.

        Raises ApiError if a seeded grant breaks a rule; nothing changes then.
        """
        self._install(seed)

    def add_clients(self, clients: Iterable[ClientSpec]) -> None:
        self.tenant.add_clients(clients)

    def add_resource_servers(self, servers: Iterable[ResourceServerSpec]) -> None:
        self.tenant.add_resource_servers(servers)

    def reset(self) -> None:
        """Drop grants and counters; faults, rate limit and token lifetime go back to the
        config. The tenant (including clients added at run time) and the token signing key
        stay, so tokens already handed out keep working."""
        self.store.clear()
        _apply_seed_grants(self.grants, self.seed)
        self.stats.reset()
        self._restore_settings()

    # -- what callers need ----------------------------------------------------------------

    @property
    def worker_client(self) -> ClientSpec:
        """The client whose credentials the CLI prints and tests use.

        Raises LookupError if the seed has none.
        """
        client = self.seed.worker_client()
        if client is None or client.client_secret is None:
            raise LookupError("the seed names no worker client with a client_secret")
        return client


def _apply_seed_grants(grants: ClientGrants, seed: Seed) -> None:
    for entry in seed.grants:
        body = {k: v for k, v in entry.items() if k not in ("id", "is_system")}
        grants.create(
            body, host=_SEED_HOST, is_system=bool(entry.get("is_system")), grant_id=entry.get("id")
        )
