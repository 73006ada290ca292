"""The read-only resource-servers and clients endpoints as functions (pure, no HTTP).

    GET /api/v2/resource-servers           offset pages (`page`, `per_page`, `include_totals`),
                                           `identifiers` filter (repeatable, at most 10)
    GET /api/v2/resource-servers/{id}      by id or by identifier (the audience), as Auth0 takes
    GET /api/v2/clients                    offset pages, `app_type` / `is_first_party` filters
    GET /api/v2/clients/{id}               by client_id; `fields` + `include_fields`

Only what the grant rules need is served: a resource server's `id`, `name`, `identifier`,
`scopes` (`[{value, description}]`), `is_system` (the Management API); a client's `client_id`,
`name`, `app_type`, `is_first_party`, `global`. No secrets: the emulator never grants
`read:client_keys`-only fields. 404 bodies are the real ones (`inexistent_resource_server`,
`inexistent_client`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from multidict import MultiMapping

from grant_worker.emulator.errors import ApiError
from grant_worker.emulator.seed import ClientSpec
from grant_worker.emulator.tenant import MANAGEMENT_PATH, Tenant
from grant_worker.emulator.validation import INVALID_QUERY

RESOURCE_SERVER_NOT_FOUND = ("The resource server does not exist", "inexistent_resource_server")
CLIENT_NOT_FOUND = ("The client does not exist", "inexistent_client")
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 100
MAX_IDENTIFIERS = 10


def _id_of(identifier: str) -> str:
    # Auth0's resource server ids are 24 hex characters; stable per identifier here.
    return hashlib.sha256(identifier.encode()).hexdigest()[:24]


def _resource_server(
    identifier: str, name: str, scopes: Sequence[str], is_system: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {"id": _id_of(identifier), "name": name}
    if is_system:
        body["is_system"] = True
    body["identifier"] = identifier
    body["scopes"] = [{"value": s, "description": s} for s in scopes]
    return body


def _client(client: ClientSpec) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "name": client.name or client.client_id,
        "app_type": client.app_type,
        "is_first_party": client.is_first_party,
        "global": False,
    }


class Directory:
    """What a token with `read:resource_servers` / `read:clients` may read of a tenant."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant

    # -- resource servers -------------------------------------------------------------------

    def _servers(self, host: str) -> list[dict[str, Any]]:
        api = self.tenant.management_api
        management = _resource_server(
            f"https://{host}{MANAGEMENT_PATH}", api.name, api.scopes, True
        )
        others = [
            _resource_server(r.identifier, r.name or r.identifier, r.scopes, False)
            for r in self.tenant.resource_servers.values()
        ]
        return [management, *others]

    def list_resource_servers(self, query: MultiMapping[str], host: str) -> Any:
        identifiers = query.getall("identifiers", [])
        if len(identifiers) > MAX_IDENTIFIERS:
            raise ApiError(
                400,
                f"Query validation error: 'Array is too long ({len(identifiers)}), maximum "
                f"{MAX_IDENTIFIERS}' on property identifiers.",
                INVALID_QUERY,
            )
        servers = self._servers(host)
        if identifiers:
            servers = [s for s in servers if s["identifier"] in identifiers]
        return _offset_page(servers, query, "resource_servers")

    def get_resource_server(self, id_or_identifier: str, host: str) -> dict[str, Any]:
        """By id or identifier; the Management API answers under any identifier it has."""
        if self.tenant.is_management_audience(id_or_identifier, host):
            api = self.tenant.management_api
            return _resource_server(id_or_identifier, api.name, api.scopes, True)
        for server in self._servers(host):
            if id_or_identifier in (server["id"], server["identifier"]):
                return server
        raise ApiError(404, *RESOURCE_SERVER_NOT_FOUND)

    # -- clients ------------------------------------------------------------------------------

    def list_clients(self, query: MultiMapping[str]) -> Any:
        clients = list(self.tenant.clients.values())
        app_types = {t for raw in query.getall("app_type", []) for t in raw.split(",") if t}
        if app_types:
            clients = [c for c in clients if c.app_type in app_types]
        first_party = _bool(query, "is_first_party")
        if first_party is not None:
            clients = [c for c in clients if c.is_first_party == first_party]
        return _offset_page([_client(c) for c in clients], query, "clients")

    def get_client(self, client_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        client = self.tenant.clients.get(client_id)
        if client is None:
            raise ApiError(404, *CLIENT_NOT_FOUND)
        return _fields(_client(client), query)


def _bool(query: Mapping[str, str], name: str) -> bool | None:
    raw = query.get(name)
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise ApiError(
            400,
            f"Query validation error: 'Expected type boolean but found type string' "
            f"on property {name}.",
            INVALID_QUERY,
        )
    return raw == "true"


def _int(query: Mapping[str, str], name: str, low: int, high: int | None) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        raise ApiError(
            400,
            f"Query validation error: 'Invalid value {raw}' on property {name}.",
            INVALID_QUERY,
        )
    return value


def _offset_page(items: list[dict[str, Any]], query: Mapping[str, str], name: str) -> Any:
    """A bare array, or `{total, start, limit, <name>}` with `include_totals=true`."""
    page = _int(query, "page", 0, None) or 0
    per_page = _int(query, "per_page", 1, MAX_PER_PAGE) or DEFAULT_PER_PAGE
    totals = _bool(query, "include_totals")
    start = page * per_page
    chosen = [_fields(item, query) for item in items[start : start + per_page]]
    if not totals:
        return chosen
    return {"total": len(items), "start": start, "limit": per_page, name: chosen}


def _fields(item: dict[str, Any], query: Mapping[str, str]) -> dict[str, Any]:
    """Auth0's `fields` (comma-separated) with `include_fields` (default true)."""
    wanted = {f for f in query.get("fields", "").split(",") if f}
    if not wanted:
        return item
    include = _bool(query, "include_fields") is not False
    return {k: v for k, v in item.items() if (k in wanted) == include}
