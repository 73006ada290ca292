"""The tenant at run time: clients and resource servers indexed from a Seed (pure).

The Management API's identifier depends on how it is reached (`https://{domain}/api/v2/`),
so audiences are checked against the Host the request came to, in both the `https://` form
SDKs build and the `http://` form a local URL suggests, plus the seed's extra identifiers.
"""

from __future__ import annotations

from collections.abc import Iterable

from grant_worker.emulator.seed import ClientSpec, ManagementApiSpec, ResourceServerSpec, Seed

MANAGEMENT_PATH = "/api/v2/"


class Tenant:
    """Clients by id and resource servers by identifier; add to them at run time."""

    def __init__(self, seed: Seed) -> None:
        self.management_api: ManagementApiSpec = seed.management_api
        self.clients: dict[str, ClientSpec] = {c.client_id: c for c in seed.all_clients()}
        self.resource_servers: dict[str, ResourceServerSpec] = {
            r.identifier: r for r in seed.resource_servers
        }

    def add_clients(self, clients: Iterable[ClientSpec]) -> None:
        """Add or replace clients (by client_id)."""
        self.clients.update((c.client_id, c) for c in clients)

    def add_resource_servers(self, servers: Iterable[ResourceServerSpec]) -> None:
        """Add or replace resource servers (by identifier)."""
        self.resource_servers.update((r.identifier, r) for r in servers)

    def is_management_audience(self, audience: str, host: str) -> bool:
        """True if `audience` names the Management API for a request sent to `host`
        ("127.0.0.1:8787", the Host header)."""
        if audience in self.management_api.extra_identifiers:
            return True
        for scheme in ("https://", "http://"):
            if audience == f"{scheme}{host}{MANAGEMENT_PATH}":
                return True
        return False

    def api_scopes(self, audience: str, host: str) -> tuple[str, ...] | None:
        """The scopes the API `audience` declares, or None if the tenant has no such API."""
        if self.is_management_audience(audience, host):
            return self.management_api.scopes
        server = self.resource_servers.get(audience)
        return None if server is None else server.scopes
