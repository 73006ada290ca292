"""Reading the Management API's answers into the project's types (pure): grants, list pages,
tokens, resource servers, clients, filters.

Only `tasks.auth0.api` calls these; an answer that cannot be read is an `UpstreamError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr, ValidationError

from grant_worker.tasks.auth0.tokens import IssuedToken
from grant_worker.tasks.errors import UpstreamError
from grant_worker.tasks.messages.models import Grant

GRANTS_PATH = "/api/v2/client-grants"
LIST_GRANTS = "list_grants"
# Used when /oauth/token omits `expires_in`: short, so a wrong guess costs one extra fetch.
DEFAULT_TOKEN_LIFETIME_S = 600.0


@dataclass(frozen=True)
class ResourceServer:
    """An API of the tenant, as far as a grant's audience needs it."""

    identifier: str
    # The Management API (Auth0's own resource server).
    is_system: bool = False


@dataclass(frozen=True)
class Client:
    """An application of the tenant, as far as holding a grant needs it."""

    client_id: str
    app_type: str | None = None
    is_first_party: bool = True


def matches(
    grant: Grant,
    audience: str,
    client_id: str | None = None,
    default_for: str | None = None,
    subject_type: str | None = None,
) -> bool:
    """True when `grant` satisfies every filter given (absent subject_type = `client`)."""
    if grant.audience != audience:
        return False
    if client_id is not None and grant.client_id != client_id:
        return False
    if default_for is not None and grant.default_for != default_for:
        return False
    return subject_type is None or (grant.subject_type or "client") == subject_type


def grant_path(grant_id: str) -> str:
    return f"{GRANTS_PATH}/{quote(grant_id, safe='')}"


def grant_from(data: Any, endpoint: str) -> Grant:
    try:
        return Grant.model_validate(data)
    except ValidationError as exc:
        # A 2xx we cannot read: for a create, the grant may well exist now.
        raise UpstreamError(
            f"{endpoint}: the answer is not a client grant", ambiguous=True
        ) from exc


def page_of(data: Any) -> tuple[list[Grant], str | None]:
    """One page of a list: checkpoint `{client_grants, next}`, offset form, or a bare array."""
    if isinstance(data, list):
        items, next_from = data, None
    elif isinstance(data, dict) and isinstance(data.get("client_grants"), list):
        items, next_from = data["client_grants"], data.get("next")
    else:
        raise UpstreamError(f"{LIST_GRANTS}: the answer is not a list of grants", ambiguous=False)
    grants = [grant_from(item, LIST_GRANTS) for item in items]
    return grants, next_from if isinstance(next_from, str) and next_from else None


def resource_server_from(data: Any, endpoint: str) -> ResourceServer:
    if not isinstance(data, dict) or not isinstance(data.get("identifier"), str):
        raise UpstreamError(f"{endpoint}: the answer is not a resource server", ambiguous=False)
    return ResourceServer(data["identifier"], is_system=data.get("is_system") is True)


def client_from(data: Any, endpoint: str) -> Client:
    if not isinstance(data, dict) or not isinstance(data.get("client_id"), str):
        raise UpstreamError(f"{endpoint}: the answer is not a client", ambiguous=False)
    app_type = data.get("app_type")
    return Client(
        data["client_id"],
        app_type=app_type if isinstance(app_type, str) else None,
        # Auth0 leaves the field out on some older clients; they are first party.
        is_first_party=data.get("is_first_party") is not False,
    )


def issued_token(body: bytes) -> IssuedToken:
    try:
        data = json.loads(body)
        access_token = data["access_token"]
        if not isinstance(access_token, str) or not access_token:
            raise ValueError("empty access_token")
    except (ValueError, KeyError, TypeError) as exc:
        raise UpstreamError(
            "token request: the answer carries no access_token", ambiguous=False
        ) from exc
    expires_in = data.get("expires_in")
    lifetime = (
        float(expires_in)
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
        else DEFAULT_TOKEN_LIFETIME_S
    )
    scope = data.get("scope")
    return IssuedToken(
        access_token=SecretStr(access_token),
        expires_in_s=lifetime,
        scope=scope if isinstance(scope, str) else None,
    )
