"""The Management API client: one HTTP call per method, answers as `Grant`s or `Auth0Error`s.

Errors are translated by `tasks.auth0.translate` (its table says which answer becomes which error),
always `raise … from exc`. Nothing here retries, except that a 401 on a Management call with a
client-credentials token gets one new token and one repeat. Every call runs the `CallHooks` the
provisioner binds (pace, attempt count, budget-capped read timeout).
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from pydantic import SecretStr

from grant_worker.config.settings import Settings
from grant_worker.tasks import metrics
from grant_worker.tasks.auth0.answers import (
    GRANTS_PATH,
    LIST_GRANTS,
    Client,
    ResourceServer,
    client_from,
    grant_from,
    grant_path,
    issued_token,
    matches,
    page_of,
    resource_server_from,
)
from grant_worker.tasks.auth0.secrets import Credentials
from grant_worker.tasks.auth0.session import send
from grant_worker.tasks.auth0.tokens import (
    DEFAULT_LEEWAY_S,
    IssuedToken,
    ReloadableToken,
    TokenCache,
    TokenSource,
)
from grant_worker.tasks.auth0.translate import (
    failing_as,
    management_error,
    network_error,
    token_error,
)
from grant_worker.tasks.errors import Unauthorized, UpstreamError
from grant_worker.tasks.messages.models import Grant

log = logging.getLogger(__name__)

TOKEN_PATH = "/oauth/token"
RESOURCE_SERVERS_PATH = "/api/v2/resource-servers"
CLIENTS_PATH = "/api/v2/clients"
PAGE_SIZE = 100
# A runaway `next` (a tenant handing back the same checkpoint) must not loop for ever.
MAX_PAGES = 1000
# The read timeout never drops below this, however little budget is left: Auth0 answers in
# well under a second, and a call that is made at all should be given a fair chance.
MIN_READ_TIMEOUT_S = 2.0
_QUERYABLE_SUBJECT_TYPES = frozenset({"client", "user"})  # the spec's enum for the filter

# Endpoint labels, used in metrics and the hooks.
TOKEN = "token"
CREATE_GRANT = "create_grant"
GET_GRANT = "get_grant"
UPDATE_GRANT = "update_grant"
DELETE_GRANT = "delete_grant"
GET_RESOURCE_SERVER = "get_resource_server"
GET_CLIENT = "get_client"


def _nothing(endpoint: str) -> None:
    return None


def _unlimited() -> float | None:
    return None


def _ignore_response(endpoint: str, status: int, headers: Mapping[str, str]) -> None:
    return None


@dataclass(frozen=True)
class CallHooks:
    """What runs around every HTTP call (the provisioner binds these per request).

    `before_call(endpoint)` runs before anything is sent (the pace; it may raise an
    `Auth0Error` to give up); `on_call(endpoint)` runs once per HTTP call actually attempted;
    `time_left()` is the request's remaining budget in seconds (None: unlimited), which caps the
    read timeout so that a call started late in the budget does not outlive it by much;
    `on_response(endpoint, status, headers)` sees every HTTP answer (the fleet learns the
    tenant's rate limit from its headers).
    """

    before_call: Callable[[str], None] = _nothing
    on_call: Callable[[str], None] = _nothing
    time_left: Callable[[], float | None] = _unlimited
    on_response: Callable[[str, int, Mapping[str, str]], None] = _ignore_response


@dataclass(frozen=True)
class ClientCredentials:
    """The worker's own M2M application; the secret stays a `SecretStr`."""

    client_id: str
    client_secret: SecretStr
    audience: str


class ManagementApi:
    """`/api/v2/client-grants` and `/oauth/token` on one tenant. Thread-safe."""

    def __init__(
        self,
        session: requests.Session,
        base_url: str,
        tokens: TokenSource,
        *,
        credentials: ClientCredentials | None,
        connect_timeout_s: float,
        read_timeout_s: float,
        hooks: CallHooks | None = None,
        epoch_clock: Callable[[], float] = time.time,
        secrets: Credentials | None = None,
    ) -> None:
        if tokens.refreshable and credentials is None:
            raise ValueError("a refreshable token source needs client credentials")
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._tokens = tokens
        self._credentials = credentials
        self._timeout = (connect_timeout_s, read_timeout_s)
        self._hooks = hooks or CallHooks()
        self._epoch_clock = epoch_clock
        # Where the client secret is read at each token request (reloadable); None: the
        # secret in `credentials` is used as given.
        self._secrets = secrets

    @property
    def tokens(self) -> TokenSource:
        """The token source shared by every copy of this client (the probe resets it)."""
        return self._tokens

    @property
    def secrets(self) -> Credentials | None:
        """The reloadable secrets shared by every copy of this client, if any."""
        return self._secrets

    def __repr__(self) -> str:
        return f"ManagementApi(base_url={self._base_url!r}, tokens={self._tokens!r})"

    def with_hooks(self, hooks: CallHooks) -> ManagementApi:
        """The same client (session, token cache) with other hooks; cheap, one per request."""
        bound = copy.copy(self)
        bound._hooks = hooks
        return bound

    # -- the Management API ------------------------------------------------------------------

    def create_grant(
        self, body: Mapping[str, Any], *, before_send: Callable[[], None] | None = None
    ) -> Grant:
        """`POST /api/v2/client-grants` → the created grant (201).

        `before_send` runs just before each send (after the token and the pace slot).
        Raises `GrantConflict` on 409 and the other `Auth0Error`s of the module table.
        """
        with failing_as(CREATE_GRANT):
            data = self._call(
                CREATE_GRANT, "POST", GRANTS_PATH, json_body=dict(body), before_send=before_send
            )
            return grant_from(data, CREATE_GRANT)

    def get_grant(self, grant_id: str) -> Grant:
        """`GET /api/v2/client-grants/{id}`; raises `NotFound` for an unknown id."""
        with failing_as(GET_GRANT):
            return grant_from(self._call(GET_GRANT, "GET", grant_path(grant_id)), GET_GRANT)

    def update_grant(self, grant_id: str, patch: Mapping[str, Any]) -> Grant:
        """`PATCH /api/v2/client-grants/{id}` with `patch` (PATCH-able fields only) → the grant."""
        with failing_as(UPDATE_GRANT):
            data = self._call(UPDATE_GRANT, "PATCH", grant_path(grant_id), json_body=dict(patch))
            return grant_from(data, UPDATE_GRANT)

    def delete_grant(self, grant_id: str, *, before_send: Callable[[], None] | None = None) -> None:
        """`DELETE /api/v2/client-grants/{id}` (204). Auth0 answers 204 for a grant that is
        already gone too, so success says nothing about whether it was there: ask a lookup.
        `before_send` runs just before each send. Raises the `Auth0Error`s of the module table
        (400 for a system grant)."""
        with failing_as(DELETE_GRANT):
            self._call(DELETE_GRANT, "DELETE", grant_path(grant_id), before_send=before_send)

    def find_grants(
        self,
        *,
        audience: str,
        client_id: str | None = None,
        default_for: str | None = None,
        subject_type: str | None = None,
    ) -> list[Grant]:
        """Grants matching every filter given, following checkpoint pages (`take`/`from`).

        One HTTP call per page. Filters are applied again client-side (older tenants ignore
        some); a grant without `subject_type` counts as `client`.
        """
        params: dict[str, str] = {"audience": audience, "take": str(PAGE_SIZE)}
        if client_id is not None:
            params["client_id"] = client_id
        if default_for is not None:
            params["default_for"] = default_for
        if subject_type in _QUERYABLE_SUBJECT_TYPES:
            params["subject_type"] = subject_type
        with failing_as(LIST_GRANTS):
            found = self._pages(params)
        return [g for g in found if matches(g, audience, client_id, default_for, subject_type)]

    def _pages(self, params: dict[str, str]) -> list[Grant]:
        found: list[Grant] = []
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            data = self._call(LIST_GRANTS, "GET", GRANTS_PATH, params=params)
            page, next_from = page_of(data)
            found.extend(page)
            if not next_from or next_from in seen:
                break
            seen.add(next_from)
            params = {**params, "from": next_from}
        else:
            raise UpstreamError(
                f"listing grants did not end after {MAX_PAGES} pages", ambiguous=False
            )
        return found

    def get_resource_server(self, identifier: str) -> ResourceServer:
        """`GET /api/v2/resource-servers/{identifier}` (Auth0 takes the audience for the id).

        Needs `read:resource_servers`: without it `InsufficientScope`; `NotFound` for an
        audience the tenant does not have."""
        path = f"{RESOURCE_SERVERS_PATH}/{quote(identifier, safe='')}"
        with failing_as(GET_RESOURCE_SERVER):
            data = self._call(GET_RESOURCE_SERVER, "GET", path)
            return resource_server_from(data, GET_RESOURCE_SERVER)

    def get_client(self, client_id: str) -> Client:
        """`GET /api/v2/clients/{id}`, only the fields a grant depends on.

        Needs `read:clients`: without it `InsufficientScope`; `NotFound` for an unknown client."""
        path = f"{CLIENTS_PATH}/{quote(client_id, safe='')}"
        params = {"fields": "client_id,app_type,is_first_party", "include_fields": "true"}
        with failing_as(GET_CLIENT):
            data = self._call(GET_CLIENT, "GET", path, params=params)
            return client_from(data, GET_CLIENT)

    def probe(self) -> None:
        """`GET /api/v2/client-grants?take=1`: does the tenant answer this worker? (the breaker's
        probe). Raises the `Auth0Error`s of the module table."""
        with failing_as(LIST_GRANTS):
            self._call(LIST_GRANTS, "GET", GRANTS_PATH, params={"take": "1"})

    # -- the token -----------------------------------------------------------------------------

    def fetch_token(self) -> IssuedToken:
        """`POST /oauth/token` (client credentials, form-encoded) → a new token.

        Raises `Unauthorized` / `Forbidden` when the credentials are refused (final),
        `RateLimited`, `UpstreamError` or `NetworkError` (retryable, never ambiguous).
        """
        with failing_as(TOKEN):
            return self._fetch_token()

    def _fetch_token(self) -> IssuedToken:
        if self._credentials is None:
            raise Unauthorized("no client credentials to fetch a token with")
        credentials = self._credentials
        secret = self._client_secret().get_secret_value()
        form = {
            "grant_type": "client_credentials",
            "client_id": credentials.client_id,
            "client_secret": secret,
            "audience": credentials.audience,
        }
        response = self._send(TOKEN, "POST", TOKEN_PATH, data=form)
        if response.status_code != 200:
            raise token_error(
                response.status_code,
                response.headers,
                response.content,
                now_epoch_s=self._epoch_clock(),
                secrets=(secret,),
                client_id=credentials.client_id,
            )
        return issued_token(response.content)

    # -- plumbing --------------------------------------------------------------------------------

    def _call(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        json_body: dict[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        before_send: Callable[[], None] | None = None,
    ) -> Any:
        refreshed = False
        while True:
            token = self._tokens.current(self.fetch_token)
            response = self._send(
                endpoint,
                method,
                path,
                json_body=json_body,
                params=params,
                headers={"Authorization": f"Bearer {token}"},
                before_send=before_send,
            )
            if response.status_code == 401 and self._tokens.refreshable and not refreshed:
                log.info(
                    "%s: 401 with a cached token; fetching a new one and trying once more", endpoint
                )
                self._tokens.invalidate(token)
                refreshed = True
                continue
            status = response.status_code
            if status == 204:
                return None
            if not 200 <= status < 300:
                raise management_error(
                    status,
                    response.headers,
                    response.content,
                    now_epoch_s=self._epoch_clock(),
                    secrets=self._secrets_of(token),
                    client_id=self._credentials.client_id if self._credentials else None,
                )
            try:
                return json.loads(response.content)
            except ValueError as exc:
                raise UpstreamError(
                    f"{status} from {endpoint} with a body that is not JSON",
                    http_status=status,
                    ambiguous=True,
                ) from exc

    def _send(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        json_body: dict[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        before_send: Callable[[], None] | None = None,
    ) -> requests.Response:
        self._hooks.before_call(endpoint)
        if before_send is not None:
            before_send()
        self._hooks.on_call(endpoint)
        started = time.monotonic()
        try:
            response = send(
                self._session,
                method,
                f"{self._base_url}{path}",
                json=json_body,
                data=data,
                params=params,
                headers=headers,
                timeout=self._timeout_for_call(),
            )
        except requests.RequestException as exc:
            metrics.AUTH0_CALLS.labels(endpoint=endpoint, status="network_error").inc()
            # A token request creates nothing: whatever happened to it, no grant was touched.
            error = network_error(exc, endpoint, may_apply=endpoint != TOKEN)
            log.info("%s %s: %s", method, path, error.message)
            raise error from exc
        finally:
            metrics.AUTH0_CALL_SECONDS.labels(endpoint=endpoint).observe(time.monotonic() - started)
        metrics.AUTH0_CALLS.labels(endpoint=endpoint, status=str(response.status_code)).inc()
        self._hooks.on_response(endpoint, response.status_code, response.headers)
        if response.status_code == 429:
            metrics.RATE_LIMITED.labels(endpoint=endpoint).inc()
        log.debug("%s %s -> %s", method, path, response.status_code)
        return response

    def _timeout_for_call(self) -> tuple[float, float]:
        connect_s, read_s = self._timeout
        left = self._hooks.time_left()
        if left is not None:
            read_s = min(read_s, max(left, MIN_READ_TIMEOUT_S))
        return connect_s, read_s

    def _client_secret(self) -> SecretStr:
        assert self._credentials is not None
        if self._secrets is not None:
            current = self._secrets.current.client_secret
            if current is not None:
                return current
        return self._credentials.client_secret

    def _secrets_of(self, token: str) -> tuple[str, ...]:
        if self._credentials is None:
            return (token,)
        return (token, self._client_secret().get_secret_value())


def make_api(
    settings: Settings,
    session: requests.Session,
    *,
    token_leeway_s: float = DEFAULT_LEEWAY_S,
    clock: Callable[[], float] = time.monotonic,
) -> ManagementApi:
    """The client for `settings`' tenant over `session` (see `tasks.auth0.session.make_session`).

    A static AUTH0_TOKEN (or AUTH0_TOKEN_FILE) wins over client credentials; secrets in files
    are re-read by `ManagementApi.secrets.reload()`. Raises `ValueError` when neither is set or
    a secret file cannot be read (`SecretFileError`).
    """
    settings.require_auth0()
    secrets = Credentials(settings)
    credentials: ClientCredentials | None = None
    tokens: TokenSource
    if secrets.current.token is not None:
        tokens = ReloadableToken(lambda: secrets.current.token)
    else:
        client_secret = secrets.current.client_secret
        assert settings.auth0_client_id and client_secret  # require_auth0
        credentials = ClientCredentials(
            client_id=settings.auth0_client_id,
            client_secret=client_secret,
            audience=settings.management_audience,
        )
        tokens = TokenCache(leeway_s=token_leeway_s, clock=clock)
    return ManagementApi(
        session,
        settings.auth0_base_url,
        tokens,
        credentials=credentials,
        connect_timeout_s=settings.grants_connect_timeout_s,
        read_timeout_s=settings.grants_read_timeout_s,
        secrets=secrets,
    )


__all__ = ["CallHooks", "ClientCredentials", "ManagementApi", "make_api", "matches"]
