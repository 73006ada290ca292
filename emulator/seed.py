"""The tenant the emulator starts with: clients, resource servers, grants (a JSON or YAML file).

    worker_client_id: grant-worker          # whose credentials the CLI prints
    management_api:
      extra_identifiers: [https://dev-acme.eu.auth0.com/api/v2/]
    resource_servers:
      - {identifier: https://api.example.com/, name: Example API, scopes: [read:data]}
    clients:
      - client_id: grant-worker
        client_secret: emulator-secret
        app_type: non_interactive
        management_scopes: [create:client_grants, read:client_grants]
      - {client_id: app-express, app_type: express_configuration}
      - {client_id: app-partner, app_type: regular_web, is_first_party: false}
    client_blocks:                          # svc-00000 ... svc-04999
      - {prefix: svc-, count: 5000, width: 5}
    grants:                                 # created at start and after every reset
      - {client_id: app-acme-billing, audience: https://billing.example.com/, scope: [read:x]}
    dialect: {conflict_error_code: conflict}   # see emulator.dialect

The Management API itself is always a resource server: its identifier is
`http(s)://<the host the request came to>/api/v2/`, plus `management_api.extra_identifiers`.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from grant_worker.emulator.dialect import Dialect

CLIENT_GRANTS_SCOPES = (
    "create:client_grants",
    "read:client_grants",
    "update:client_grants",
    "delete:client_grants",
)
DEFAULT_SEED_RESOURCE = "default_seed.yaml"


class ClientSpec(BaseModel):
    """An application of the tenant, with what the grant rules and /oauth/token need."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(min_length=1)
    name: str = ""
    # Auth0 app types: non_interactive (M2M), regular_web, spa, native, express_configuration...
    app_type: str = "non_interactive"
    is_first_party: bool = True
    client_secret: str | None = None
    # None means Auth0's default for the app type (client_credentials for M2M apps).
    grant_types: tuple[str, ...] | None = None
    # Scopes a client-credentials token for the Management API carries.
    management_scopes: tuple[str, ...] = ()

    @property
    def allowed_grant_types(self) -> tuple[str, ...]:
        if self.grant_types is not None:
            return self.grant_types
        if self.app_type == "non_interactive":
            return ("client_credentials",)
        return ("authorization_code", "implicit", "refresh_token")


class ClientBlock(BaseModel):
    """A generated run of clients `prefix + zero-padded number`, e.g. svc-00000..svc-04999."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: str = Field(min_length=1)
    count: int = Field(ge=0, le=1_000_000)
    width: int = Field(default=5, ge=1, le=12)
    start: int = Field(default=0, ge=0)
    app_type: str = "non_interactive"
    is_first_party: bool = True

    def expand(self) -> list[ClientSpec]:
        return [
            ClientSpec(
                client_id=f"{self.prefix}{n:0{self.width}d}",
                name=f"{self.prefix}{n:0{self.width}d}",
                app_type=self.app_type,
                is_first_party=self.is_first_party,
            )
            for n in range(self.start, self.start + self.count)
        ]


class ResourceServerSpec(BaseModel):
    """An API of the tenant; `identifier` is what grants name as their audience."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identifier: str = Field(min_length=1)
    name: str = ""
    scopes: tuple[str, ...] = ()


class ManagementApiSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "Auth0 Management API"
    extra_identifiers: tuple[str, ...] = ()
    scopes: tuple[str, ...] = CLIENT_GRANTS_SCOPES


class Seed(BaseModel):
    """A whole tenant. Raises pydantic.ValidationError on unknown keys or duplicate ids."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    worker_client_id: str | None = None
    management_api: ManagementApiSpec = ManagementApiSpec()
    resource_servers: tuple[ResourceServerSpec, ...] = ()
    clients: tuple[ClientSpec, ...] = ()
    client_blocks: tuple[ClientBlock, ...] = ()
    # Create bodies (plus optional `id` and `is_system`), applied through the API's own rules.
    grants: tuple[dict[str, Any], ...] = ()
    dialect: Dialect = Dialect()

    @model_validator(mode="after")
    def _check(self) -> Seed:
        counts = Counter(c.client_id for c in self.all_clients())
        duplicates = sorted(i for i, n in counts.items() if n > 1)
        if duplicates:
            raise ValueError(f"duplicate client_id in seed: {', '.join(duplicates[:5])}")
        identifiers = [r.identifier for r in self.resource_servers]
        if len(set(identifiers)) < len(identifiers):
            raise ValueError("duplicate resource server identifier in seed")
        if self.worker_client_id is not None:
            worker = next((c for c in self.clients if c.client_id == self.worker_client_id), None)
            if worker is None or worker.client_secret is None:
                raise ValueError("worker_client_id must name a client with a client_secret")
        return self

    def all_clients(self) -> list[ClientSpec]:
        """The listed clients followed by every generated block."""
        expanded = list(self.clients)
        for block in self.client_blocks:
            expanded.extend(block.expand())
        return expanded

    def worker_client(self) -> ClientSpec | None:
        """The client whose credentials to hand out: `worker_client_id`, else the first client
        with a secret and Management API scopes."""
        for client in self.clients:
            if self.worker_client_id is not None:
                if client.client_id == self.worker_client_id:
                    return client
            elif client.client_secret and client.management_scopes:
                return client
        return None


def seed_from_dict(data: dict[str, Any]) -> Seed:
    """Build a Seed from decoded JSON/YAML. Raises pydantic.ValidationError."""
    return Seed.model_validate(data)


def load_seed(path: str | Path) -> Seed:
    """Read a seed file; `.json` is JSON, anything else YAML (a superset of JSON).

    Raises OSError when unreadable, ValueError (incl. pydantic.ValidationError) when invalid.
    """
    text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a seed must be a mapping at the top level")
    return seed_from_dict(data)


@functools.cache
def default_seed() -> Seed:
    """The tenant shipped with the package (`emulator/default_seed.yaml`); read once, since
    a Seed is immutable."""
    text = (
        resources.files("grant_worker.emulator").joinpath(DEFAULT_SEED_RESOURCE).read_text("utf-8")
    )
    return seed_from_dict(yaml.safe_load(text))
