"""POST /oauth/token with grant_type=client_credentials, and its OAuth errors (pure).

A client may get a token for:
- the Management API: scopes = the client's `management_scopes` in the seed, plus the scopes
  of any grant stored for it on that audience;
- another API of the tenant: scopes = the grant stored for (client, audience), or the
  `default_for: third_party_clients` grant for a third-party client; without one, 403.

Errors, as a tenant answers them: wrong id or secret → 401 access_denied "Unauthorized"; a grant
type the client may not use → 403 unauthorized_client; an API without a grant → 403
access_denied "Client is not authorized to access ...".

`organization` is honoured against the grant's `organization_usage` (absent = deny): `deny`
refuses a request naming an organization, `require` refuses one naming none (403
access_denied; the wording is [inferred]).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from grant_worker.emulator.errors import OAuthError
from grant_worker.emulator.seed import ClientSpec
from grant_worker.emulator.store import GrantStore, grant_key
from grant_worker.emulator.tenant import Tenant
from grant_worker.emulator.tokens import TokenIssuer

GRANT_TYPES_URI = "https://auth0.com/docs/clients/client-grant-types"
CLIENT_GRANTS_DOCS = "https://auth0.com/docs/api/v2#!/Client_Grants/post_client_grants"
# Grant types Auth0 knows; anything else is unsupported outright.
KNOWN_GRANT_TYPES = frozenset(
    {
        "client_credentials",
        "authorization_code",
        "implicit",
        "refresh_token",
        "password",
        "http://auth0.com/oauth/grant-type/password-realm",
        "urn:ietf:params:oauth:grant-type:device_code",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    }
)


def exchange(
    params: Mapping[str, Any],
    *,
    tenant: Tenant,
    store: GrantStore,
    issuer: TokenIssuer,
    host: str,
    base_url: str,
    lifetime_s: float,
) -> dict[str, Any]:
    """Answer a token request (form or JSON fields in `params`) sent to `host`.

    Returns `{access_token, scope, expires_in, token_type}`. Raises OAuthError.
    """
    grant_type = _text(params, "grant_type")
    if not grant_type:
        raise OAuthError(400, "invalid_request", "Missing required parameter: grant_type")
    if grant_type not in KNOWN_GRANT_TYPES:
        raise OAuthError(400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}")
    client = _authenticate(params, tenant)
    if grant_type not in client.allowed_grant_types:
        raise OAuthError(
            403,
            "unauthorized_client",
            f"Grant type '{grant_type}' not allowed for the client.",
            GRANT_TYPES_URI,
        )
    if grant_type != "client_credentials":
        raise OAuthError(
            400,
            "unsupported_grant_type",
            f"The emulator only issues client_credentials tokens, not {grant_type}",
        )
    audience = _text(params, "audience")
    if not audience:
        raise OAuthError(
            403,
            "access_denied",
            "No audience parameter was provided, and no default audience has been configured",
        )
    granted = _granted_scopes(client, audience, tenant, store, host)
    _check_organization(_text(params, "organization"), client, audience, store)
    requested = _text(params, "scope")
    if requested:
        granted = [s for s in granted if s in requested.split()]
    token = issuer.issue(
        client_id=client.client_id,
        audience=audience,
        scopes=granted,
        lifetime_s=lifetime_s,
        issuer=f"{base_url}/",
    )
    return {
        "access_token": token,
        "scope": " ".join(granted),
        "expires_in": int(lifetime_s),
        "token_type": "Bearer",
    }


def _text(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    return value if isinstance(value, str) else ""


def _authenticate(params: Mapping[str, Any], tenant: Tenant) -> ClientSpec:
    client = tenant.clients.get(_text(params, "client_id"))
    secret = _text(params, "client_secret")
    if client is None or client.client_secret is None or secret != client.client_secret:
        raise OAuthError(401, "access_denied", "Unauthorized")
    return client


def _check_organization(
    organization: str, client: ClientSpec, audience: str, store: GrantStore
) -> None:
    grant = store.find(grant_key(client.client_id, None, audience, "client"))
    usage = (grant.settings.get("organization_usage") if grant is not None else None) or "deny"
    if organization and usage == "deny":
        raise OAuthError(
            403,
            "access_denied",
            f'Client "{client.client_id}" may not use organizations with "{audience}"',
        )
    if not organization and usage == "require":
        raise OAuthError(
            403, "access_denied", f'An organization is required to access "{audience}"'
        )


def _granted_scopes(
    client: ClientSpec, audience: str, tenant: Tenant, store: GrantStore, host: str
) -> list[str]:
    api_scopes = tenant.api_scopes(audience, host)
    if api_scopes is None:
        raise OAuthError(403, "access_denied", f"Service not found: {audience}")
    is_management = tenant.is_management_audience(audience, host)
    grant = store.find(grant_key(client.client_id, None, audience, "client"))
    if grant is None and not client.is_first_party:
        grant = store.find(grant_key(None, "third_party_clients", audience, "client"))
    if grant is None and not (is_management and client.management_scopes):
        raise OAuthError(
            403,
            "access_denied",
            f'Client is not authorized to access "{audience}". You need to create a '
            f'"client-grant" associated to this API. See: {CLIENT_GRANTS_DOCS}',
        )
    scopes = list(client.management_scopes) if is_management else []
    if grant is not None:
        allowed = api_scopes if grant.settings.get("allow_all_scopes") else grant.scope
        scopes += [s for s in allowed if s not in scopes]
    return scopes
