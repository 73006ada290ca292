"""What `grants bulk --plan` reads of the tenant besides grants: does each audience exist, does
each client exist and can it hold a grant. One call per distinct audience and client.

A token without `read:resource_servers` (or `read:clients`) cannot answer: that check is
`unchecked` for every row, never a reason to fail the plan, and not asked again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from grant_worker.tasks.auth0.answers import Client, ResourceServer
from grant_worker.tasks.auth0.api import ManagementApi
from grant_worker.tasks.errors import InsufficientScope, NotFound
from grant_worker.tasks.messages.models import ErrorCode

Check = Literal["audience", "client"]
# Auth0 refuses a grant for these with 400 "Client of type express_configuration cannot be
# used" (a real answer); no other app type was seen refused.
APP_TYPES_WITHOUT_GRANTS = frozenset({"express_configuration"})
SCOPE_OF: dict[Check, str] = {"audience": "read:resource_servers", "client": "read:clients"}

T = TypeVar("T")


@dataclass
class Targets:
    """The audiences and clients read; None: the tenant has no such one."""

    servers: dict[str, ResourceServer | None] = field(default_factory=dict)
    clients: dict[str, Client | None] = field(default_factory=dict)
    unchecked: set[Check] = field(default_factory=set)

    def refusal(self, audience: str, client_id: str | None) -> tuple[ErrorCode, str] | None:
        """The error code the run would fail the row with, and why; None if none is known."""
        server = self.servers.get(audience)
        if "audience" not in self.unchecked and server is None:
            return "not_found", f"the tenant has no API with identifier {audience}"
        if client_id is None or "client" in self.unchecked:
            return None
        client = self.clients.get(client_id)
        if client is None:
            return "not_found", f"the tenant has no client {client_id}"
        if client.app_type in APP_TYPES_WITHOUT_GRANTS:
            return "bad_request", f"client {client_id} is of type {client.app_type}: no grants"
        if not client.is_first_party and server is not None and server.is_system:
            return "bad_request", f"client {client_id} is third party: no Management API grants"
        return None

    def unchecked_for(self, client_id: str | None) -> tuple[Check, ...]:
        """The checks that could not be made for a row with this client (or default_for)."""
        checks: list[Check] = []
        if "audience" in self.unchecked:
            checks.append("audience")
        if client_id is not None and "client" in self.unchecked:
            checks.append("client")
        return tuple(checks)


def read_targets(
    api: ManagementApi, audiences: Iterable[str], client_ids: Iterable[str]
) -> Targets:
    """Read each distinct audience and client once (sorted, so a run is reproducible).

    Raises the `Auth0Error`s of the calls other than `InsufficientScope` and `NotFound`."""
    targets = Targets()
    if not _read_each(audiences, api.get_resource_server, targets.servers):
        targets.unchecked.add("audience")
    if not _read_each(client_ids, api.get_client, targets.clients):
        targets.unchecked.add("client")
    return targets


def _read_each(names: Iterable[str], read: Callable[[str], T], into: dict[str, T | None]) -> bool:
    """Read each distinct name once, sorted, into `into` (None: not found); False, the rest not
    asked, once the token turns out not to be allowed to read them."""
    for name in sorted(set(names)):
        try:
            into[name] = read(name)
        except NotFound:
            into[name] = None
        except InsufficientScope:
            return False
    return True
