"""The client-grants endpoints as functions: schema, tenant rules, store (pure, no HTTP).

Each method takes what the request carried (decoded body, query, the Host it was sent to)
and returns the response body, or raises ApiError with Auth0's status and body.

Order of the rules on create, as a tenant applies them: the schema; exactly one of
client_id / default_for; scope vs allow_all_scopes; the audience must be an API of the tenant
(404); the client must exist (404) and be of a type that can hold grants (400); no third-party
grants on the Management API (400); `user` grants on the Management API only hold the
current_user scopes (400); optionally, scopes the API declares (400); unique (owner, audience,
subject_type) (409).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from grant_worker.emulator.dialect import Dialect
from grant_worker.emulator.errors import ApiError
from grant_worker.emulator.store import (
    SETTABLE,
    BadCheckpoint,
    DuplicateGrant,
    Grant,
    GrantStore,
    grant_key,
)
from grant_worker.emulator.tenant import MANAGEMENT_PATH, Tenant
from grant_worker.emulator.validation import (
    INVALID_QUERY,
    parse_list_query,
    validate_create,
    validate_update,
)

GRANT_NOT_FOUND = "inexistent_client_grant"


class ClientGrants:
    """POST/GET/PATCH/DELETE /api/v2/client-grants over a tenant and a store."""

    def __init__(self, tenant: Tenant, store: GrantStore, dialect: Dialect) -> None:
        self.tenant = tenant
        self.store = store
        self.dialect = dialect

    # -- create ---------------------------------------------------------------------------

    def create(
        self, body: Any, *, host: str, is_system: bool = False, grant_id: str | None = None
    ) -> dict[str, Any]:
        """POST /client-grants: the 201 body. `is_system`/`grant_id` are for seeded grants.

        Raises ApiError 400 (schema or rule), 404 (audience or client), 409 (duplicate).
        """
        fields = validate_create(body, self.dialect)
        d = self.dialect
        client_id, default_for = fields.get("client_id"), fields.get("default_for")
        if (client_id is None) == (default_for is None):
            raise ApiError(
                400, d.client_xor_default_for_message, d.client_xor_default_for_error_code
            )
        self._check_scope_vs_allow_all(fields.get("scope"), fields.get("allow_all_scopes"))
        audience: str = fields["audience"]
        is_management = self.tenant.is_management_audience(audience, host)
        if not is_management and audience not in self.tenant.resource_servers:
            raise ApiError(
                404, f"No resource with identifier {audience}", d.unknown_audience_error_code
            )
        third_party = default_for is not None
        if client_id is not None:
            client = self.tenant.clients.get(client_id)
            if client is None:
                raise ApiError(404, d.unknown_client_message, d.unknown_client_error_code)
            if client.app_type in d.app_types_without_grants:
                raise ApiError(
                    400, f"Client of type {client.app_type} cannot be used", "validation_error"
                )
            third_party = not client.is_first_party
        subject_type = fields.get("subject_type", "client")
        self._check_declared_scopes(audience, host, fields.get("scope"))
        if is_management:
            if third_party:
                raise ApiError(400, d.third_party_message, d.third_party_error_code)
            self._check_current_user_scopes(subject_type, fields.get("scope"))
        try:
            grant = self.store.add(
                audience=audience,
                subject_type=subject_type,
                client_id=client_id,
                default_for=default_for,
                settings={k: fields[k] for k in SETTABLE if k in fields},
                is_system=is_system,
                grant_id=grant_id,
            )
        except DuplicateGrant as exc:
            raise ApiError(
                409,
                f"A client grant already exists between {client_id or default_for} and {audience}",
                d.conflict_error_code,
            ) from exc
        return grant.to_json()

    def _check_scope_vs_allow_all(self, scope: Any, allow_all_scopes: Any) -> None:
        d = self.dialect
        if d.reject_scope_with_allow_all_scopes and allow_all_scopes is True and scope:
            raise ApiError(
                400, d.scope_with_allow_all_scopes_message, d.scope_with_allow_all_scopes_error_code
            )

    def _check_declared_scopes(self, audience: str, host: str, scope: Any) -> None:
        d = self.dialect
        if not d.validate_scopes_against_api or not scope:
            return
        declared = self.tenant.api_scopes(audience, host) or ()
        undeclared = [s for s in scope if s not in declared]
        if undeclared:
            message = d.undeclared_scopes_message.format(scopes=",".join(undeclared))
            raise ApiError(400, message, d.undeclared_scopes_error_code)

    def _check_current_user_scopes(self, subject_type: str, scope: Any) -> None:
        d = self.dialect
        if subject_type != "user" or not scope:
            return
        refused = [s for s in scope if s not in d.current_user_scopes]
        if refused:
            message = d.current_user_scopes_message.format(scopes=",".join(refused))
            raise ApiError(400, message, d.current_user_scopes_error_code)

    # -- read -----------------------------------------------------------------------------

    def management_grants(self, host: str) -> list[Grant]:
        """The Management API grants of clients whose tokens carry Management API scopes (the
        worker's own among them), for a request sent to `host`. They live in the tenant, not
        the store: their audience depends on the host, and `reset` must not drop them."""
        audience = f"https://{host}{MANAGEMENT_PATH}"
        found: list[Grant] = []
        clients = [c for c in self.tenant.clients.values() if c.management_scopes]
        for client in clients:
            if not client.management_scopes:
                continue
            if self.store.find(grant_key(client.client_id, None, audience, "client")):
                continue
            digest = hashlib.sha256(client.client_id.encode()).hexdigest()[:16]
            found.append(
                Grant(
                    id=f"cgr_{digest}",
                    # before every stored grant in list order, and stable across pages
                    seq=-len(clients) + len(found) - 1,
                    audience=audience,
                    subject_type="client",
                    client_id=client.client_id,
                    settings={"scope": list(client.management_scopes)},
                )
            )
        return found

    def list(self, query: Mapping[str, str], host: str | None = None) -> Any:
        """GET /client-grants: a bare array, `{total,start,limit,client_grants}` with
        include_totals, or `{client_grants,next?}` when from/take are present. With `host`,
        the Management API grants (`management_grants`) come first, on the first page.

        Raises ApiError 400 `invalid_query_string`.
        """
        q = parse_list_query(query, self.dialect)
        own = [] if host is None else self.management_grants(host)
        if q.mode == "checkpoint":
            try:
                grants, next_token = self.store.page_checkpoint(q.filters, q.from_, q.take, own)
            except BadCheckpoint as exc:
                raise ApiError(400, self.dialect.bad_checkpoint_message, INVALID_QUERY) from exc
            page: dict[str, Any] = {"client_grants": [g.to_json() for g in grants]}
            if next_token is not None:
                page["next"] = next_token
            return page
        grants, total = self.store.page_offset(q.filters, q.page, q.per_page, own)
        items = [g.to_json() for g in grants]
        if q.mode == "array":
            return items
        return {
            "total": total,
            "start": q.page * q.per_page,
            "limit": q.per_page,
            "client_grants": items,
        }

    def get(self, grant_id: str) -> dict[str, Any]:
        """GET /client-grants/{id}. Raises ApiError 404 `inexistent_client_grant`."""
        grant = self.store.get(grant_id)
        if grant is None:
            raise ApiError(404, "The grant does not exist.", GRANT_NOT_FOUND)
        return grant.to_json()

    # -- change ---------------------------------------------------------------------------

    def update(self, grant_id: str, body: Any, *, host: str) -> dict[str, Any]:
        """PATCH /client-grants/{id}: the whole grant after the change.

        The body is checked before the id is looked up, as a schema-validating router does.
        Raises ApiError 400 (schema, rules, system grant) or 404.
        """
        changes = validate_update(body)
        grant = self.store.get(grant_id)
        if grant is None:
            raise ApiError(404, self.dialect.update_not_found_message, GRANT_NOT_FOUND)
        self._refuse_system(grant)
        # A stored scope is dropped whenever allow_all_scopes turns true, so only a scope
        # sent in this body can clash with the resulting allow_all_scopes.
        allow_all = changes.get("allow_all_scopes", grant.settings.get("allow_all_scopes"))
        self._check_scope_vs_allow_all(changes.get("scope"), allow_all)
        self._check_declared_scopes(grant.audience, host, changes.get("scope"))
        if self.tenant.is_management_audience(grant.audience, host):
            self._check_current_user_scopes(grant.subject_type, changes.get("scope"))
        return self.store.update(grant_id, changes).to_json()

    def delete(self, grant_id: str) -> None:
        """DELETE /client-grants/{id}: idempotent, an unknown id is not an error (as real
        Auth0). Raises ApiError 400 for a system grant."""
        grant = self.store.get(grant_id)
        if grant is not None:
            self._refuse_system(grant)
            self.store.delete(grant_id)

    def _refuse_system(self, grant: Grant) -> None:
        if grant.is_system:
            raise ApiError(
                400, self.dialect.system_grant_message, self.dialect.system_grant_error_code
            )
