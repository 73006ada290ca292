"""The admin API under /__emulator/ (Auth0 has nothing like it; no faults or limits apply).

    GET  /__emulator/health            {"status": "ok"}
    GET  /__emulator/stats             counters, see emulator.stats
    GET  /__emulator/grants            every stored grant, as the API returns them
    POST /__emulator/reset             drop grants and counters; settings back to start-up
    GET  /__emulator/settings          {"faults", "rate_limit", "token_lifetime_s"}
    POST /__emulator/faults            change some fault settings: {"error_rate": 0.1, ...}
    PUT  /__emulator/rate-limit        {"rate_per_s": 10, "burst": 20, "retry_after": false}
                                       ({"rate_per_s": null} = unlimited)
    PUT  /__emulator/token-lifetime    {"seconds": 3600} (tokens issued from now on)
    POST /__emulator/clients           [client, ...] added or replaced (seed format)
    POST /__emulator/resource-servers  [resource server, ...] added or replaced
    PUT  /__emulator/seed              a whole seed: replaces the tenant, drops all grants
    POST /__emulator/outage            {"seconds": 30, "mode": "error" | "drop" | "hang"}: every
                                       Auth0 call (token included) fails until then
    DELETE /__emulator/outage          the tenant is back
    POST /__emulator/late-writes       {"method": "PATCH", "count": 1, "apply_after_s": 20,
                                       "reply": "late" | "never"}: the next writes of that
                                       method are carried out that long after they arrived
                                       (the client gone or not), then answered or not
    POST /__emulator/rotate-secret     {"client_secret": "new", "client_id": (the worker)}:
                                       issued tokens stay valid until they expire, as in Auth0
    POST /__emulator/revoke-tokens     every token issued so far is refused (401)
    PUT  /__emulator/worker-scopes     {"scopes": [...], "client_id": (the worker)}: the
                                       scopes of its Management API grant, for new tokens
    PUT  /__emulator/background        {"rps": 8}: other applications spending the bucket

Bad input answers 400 `{"error": "...", "details": [...]}` and changes nothing.
It has no authentication: the emulator is for local development and tests only.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import pydantic
from aiohttp import web

from grant_worker.emulator.errors import ApiError
from grant_worker.emulator.faults import LateWrite
from grant_worker.emulator.ratelimit import RateLimitSettings
from grant_worker.emulator.seed import ClientSpec, ResourceServerSpec, Seed
from grant_worker.emulator.state import Emulator

PREFIX = "/__emulator"
AdminHandler = Callable[[Emulator, Any], Any]


class _Outage(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    seconds: float = pydantic.Field(gt=0, le=3600)
    mode: Literal["error", "drop", "hang"] = "error"


class _Rotation(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    client_secret: str = pydantic.Field(min_length=1)
    client_id: str | None = None


class _Scopes(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    scopes: list[str]
    client_id: str | None = None


class _Background(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    rps: float = pydantic.Field(ge=0, le=10_000)


class _Lifetime(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    seconds: float = pydantic.Field(ge=0)


def _bad(error: str, details: Any = None) -> web.Response:
    return web.json_response({"error": error, "details": details or []}, status=400)


def _endpoint(
    key: web.AppKey[Emulator], action: AdminHandler, *, reads_body: bool
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        payload: Any = None
        if reads_body:
            try:
                payload = json.loads(await request.read() or b"null")
            except ValueError:
                return _bad("the body must be JSON")
        try:
            result = action(request.app[key], payload)
        except pydantic.ValidationError as exc:
            return _bad("invalid settings", json.loads(exc.json(include_url=False)))
        except (ApiError, ValueError, TypeError, LookupError) as exc:
            return _bad(str(exc))
        if result is None:
            return web.Response(status=204)
        return web.json_response(result)

    return handle


def _settings(em: Emulator, _: Any) -> dict[str, Any]:
    return {
        "faults": em.faults.model_dump(),
        "rate_limit": em.rate_limit.model_dump(),
        "token_lifetime_s": em.token_lifetime_s,
        "background_rps": em.background_rps,
        "outage_left_s": em.outage_left_s(),
    }


def _start_outage(em: Emulator, body: Any) -> dict[str, Any]:
    outage = _Outage.model_validate(body)
    em.start_outage(outage.seconds, outage.mode)
    return {"outage_left_s": em.outage_left_s(), "mode": em.outage_mode}


def _hold_writes(em: Emulator, body: Any) -> None:
    em.hold_writes(LateWrite.model_validate(body))


def _end_outage(em: Emulator, _: Any) -> None:
    em.end_outage()


def _rotate_secret(em: Emulator, body: Any) -> None:
    rotation = _Rotation.model_validate(body)
    em.rotate_secret(rotation.client_id or em.worker_client.client_id, rotation.client_secret)


def _revoke_tokens(em: Emulator, _: Any) -> None:
    em.revoke_tokens()


def _set_scopes(em: Emulator, body: Any) -> None:
    scopes = _Scopes.model_validate(body)
    em.set_management_scopes(scopes.client_id or em.worker_client.client_id, scopes.scopes)


def _set_background(em: Emulator, body: Any) -> dict[str, Any]:
    em.background_rps = _Background.model_validate(body).rps
    return {"background_rps": em.background_rps}


def _set_faults(em: Emulator, changes: Any) -> dict[str, Any]:
    if not isinstance(changes, dict):
        raise TypeError("expected an object of fault settings")
    return em.set_faults(**changes).model_dump()


def _set_rate_limit(em: Emulator, body: Any) -> dict[str, Any]:
    em.set_rate_limit(RateLimitSettings.model_validate(body))
    return em.rate_limit.model_dump()


def _set_token_lifetime(em: Emulator, body: Any) -> dict[str, Any]:
    em.token_lifetime_s = _Lifetime.model_validate(body).seconds
    return {"token_lifetime_s": em.token_lifetime_s}


def _add_clients(em: Emulator, body: Any) -> None:
    em.add_clients(pydantic.TypeAdapter(list[ClientSpec]).validate_python(body))


def _add_resource_servers(em: Emulator, body: Any) -> None:
    em.add_resource_servers(pydantic.TypeAdapter(list[ResourceServerSpec]).validate_python(body))


def _reseed(em: Emulator, body: Any) -> None:
    em.reseed(Seed.model_validate(body))


def _reset(em: Emulator, _: Any) -> None:
    em.reset()


def add_routes(app: web.Application, key: web.AppKey[Emulator]) -> None:
    """Register the admin routes on `app`, acting on the Emulator stored under `key`."""

    def route(method: str, path: str, action: AdminHandler, reads_body: bool = False) -> None:
        app.router.add_route(method, PREFIX + path, _endpoint(key, action, reads_body=reads_body))

    route("GET", "/health", lambda em, _: {"status": "ok"})
    route("GET", "/stats", lambda em, _: em.stats.snapshot(len(em.store)))
    route("GET", "/grants", lambda em, _: [g.to_json() for g in em.store])
    route("POST", "/reset", _reset)
    route("GET", "/settings", _settings)
    route("POST", "/faults", _set_faults, reads_body=True)
    route("PUT", "/rate-limit", _set_rate_limit, reads_body=True)
    route("PUT", "/token-lifetime", _set_token_lifetime, reads_body=True)
    route("POST", "/clients", _add_clients, reads_body=True)
    route("POST", "/resource-servers", _add_resource_servers, reads_body=True)
    route("PUT", "/seed", _reseed, reads_body=True)
    route("POST", "/outage", _start_outage, reads_body=True)
    route("DELETE", "/outage", _end_outage)
    route("POST", "/late-writes", _hold_writes, reads_body=True)
    route("POST", "/rotate-secret", _rotate_secret, reads_body=True)
    route("POST", "/revoke-tokens", _revoke_tokens)
    route("PUT", "/worker-scopes", _set_scopes, reads_body=True)
    route("PUT", "/background", _set_background, reads_body=True)
