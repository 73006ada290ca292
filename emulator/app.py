"""The aiohttp application: Auth0's routes, and the conditions every call goes through.

    POST   /oauth/token                  client credentials (form or JSON)
    GET    /api/v2/client-grants         list (bare array, offset+totals, checkpoint)
    POST   /api/v2/client-grants         create
    GET    /api/v2/client-grants/{id}    read
    PATCH  /api/v2/client-grants/{id}    update
    DELETE /api/v2/client-grants/{id}    delete (idempotent)
    GET    /api/v2/resource-servers[/{id}]  read (emulator.directory)
    GET    /api/v2/clients[/{id}]           read (emulator.directory)
    *      /__emulator/...               the admin API (emulator.admin), untouched by faults

A Management API request, in order: counted (and, for a create, its grant key); delayed by
the configured latency; charged to the token bucket (429 when empty); subjected to at most one
fault; checked for a bearer token with the needed scope; carried out; given the rate-limit
headers. /oauth/token only meets latency, limit and faults when configured to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

from aiohttp import web

from grant_worker.emulator import admin
from grant_worker.emulator.directory import Directory
from grant_worker.emulator.errors import ApiError, OAuthError, reason_phrase
from grant_worker.emulator.faults import Fault, FaultSettings, LateWrite, echo_body, fault_body
from grant_worker.emulator.oauth import exchange
from grant_worker.emulator.ratelimit import (
    TOO_MANY_REQUESTS_BODY,
    TOO_MANY_REQUESTS_OAUTH_BODY,
    RateDecision,
)
from grant_worker.emulator.state import Emulator
from grant_worker.emulator.store import format_key, grant_key
from grant_worker.emulator.validation import coerce_form

EMULATOR = web.AppKey("emulator", Emulator)
GRANTS_PATH = "/api/v2/client-grants"
RESOURCE_SERVERS_PATH = "/api/v2/resource-servers"
CLIENTS_PATH = "/api/v2/clients"
# Auth0 lets either scope read clients (the keys one also shows secrets, never served here).
READ_CLIENTS_SCOPES = ("read:clients", "read:client_keys")
JSON_TYPE = "application/json; charset=utf-8"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_dumps = partial(json.dumps, separators=(",", ":"))


def json_response(body: Any, status: int = 200) -> web.Response:
    """A compact JSON reply with Auth0's `application/json; charset=utf-8`."""
    return web.json_response(body, status=status, dumps=_dumps)


def _emulator(request: web.Request) -> Emulator:
    return request.app[EMULATOR]


# -- request bodies ---------------------------------------------------------------------------


FormCoercion = Callable[[dict[str, list[str]]], dict[str, Any]]
BODY = web.RequestKey("body", object)


def _last_values(form: dict[str, list[str]]) -> dict[str, Any]:
    return {key: values[-1] for key, values in form.items()}


async def _read_body(request: web.Request, coerce: FormCoercion) -> Any:
    """The decoded JSON or form body; {} when empty. Raises ApiError 400 or 415."""
    raw = await request.read()
    content_type = request.content_type
    if content_type == "application/x-www-form-urlencoded":
        return coerce(urllib.parse.parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True))
    if not raw.strip():
        return {}
    if content_type not in ("application/json", "application/octet-stream"):
        raise ApiError(415, "Unsupported Media Type")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "Invalid request payload JSON format") from exc


async def body_of(request: web.Request, coerce: FormCoercion | None = None) -> Any:
    """The request body, decoded once per request; form bodies go through `coerce` (by
    default into the client-grant schema's types). Raises ApiError 400 or 415."""
    if BODY not in request:
        if coerce is None:
            dialect = _emulator(request).grants.dialect
            coerce = partial(coerce_form, dialect=dialect)
        try:
            request[BODY] = await _read_body(request, coerce)
        except ApiError as exc:
            request[BODY] = exc
    body = request[BODY]
    if isinstance(body, ApiError):
        raise body
    return body


# -- Auth0's routes ---------------------------------------------------------------------------


def _authorize(request: web.Request, scope: str | tuple[str, ...]) -> None:
    em = _emulator(request)
    em.issuer.authorize(
        request.headers.get("Authorization"),
        scope,
        lambda audience: em.tenant.is_management_audience(audience, request.host),
        em.grants.dialect.invalid_token_error_code,
    )


async def token(request: web.Request) -> web.Response:
    em = _emulator(request)
    try:
        params = await body_of(request, _last_values)
    except ApiError:
        params = {}
    body = exchange(
        params if isinstance(params, dict) else {},
        tenant=em.tenant,
        store=em.store,
        issuer=em.issuer,
        host=request.host,
        base_url=f"{request.scheme}://{request.host}",
        lifetime_s=em.token_lifetime_s,
    )
    em.stats.tokens_issued += 1
    return json_response(body)


async def list_grants(request: web.Request) -> web.Response:
    _authorize(request, "read:client_grants")
    return json_response(_emulator(request).grants.list(request.query, host=request.host))


async def create_grant(request: web.Request) -> web.Response:
    _authorize(request, "create:client_grants")
    body = await body_of(request)
    return json_response(_emulator(request).grants.create(body, host=request.host), 201)


async def get_grant(request: web.Request) -> web.Response:
    _authorize(request, "read:client_grants")
    return json_response(_emulator(request).grants.get(request.match_info["id"]))


async def update_grant(request: web.Request) -> web.Response:
    _authorize(request, "update:client_grants")
    body = await body_of(request)
    grant = _emulator(request).grants.update(request.match_info["id"], body, host=request.host)
    return json_response(grant)


async def delete_grant(request: web.Request) -> web.Response:
    _authorize(request, "delete:client_grants")
    _emulator(request).grants.delete(request.match_info["id"])
    # Real 204s still carry the JSON content type.
    return web.Response(status=204, headers={"Content-Type": JSON_TYPE})


async def list_resource_servers(request: web.Request) -> web.Response:
    _authorize(request, "read:resource_servers")
    directory = Directory(_emulator(request).tenant)
    return json_response(directory.list_resource_servers(request.query, request.host))


async def get_resource_server(request: web.Request) -> web.Response:
    _authorize(request, "read:resource_servers")
    directory = Directory(_emulator(request).tenant)
    return json_response(directory.get_resource_server(request.match_info["id"], request.host))


async def list_clients(request: web.Request) -> web.Response:
    _authorize(request, READ_CLIENTS_SCOPES)
    return json_response(Directory(_emulator(request).tenant).list_clients(request.query))


async def get_client(request: web.Request) -> web.Response:
    _authorize(request, READ_CLIENTS_SCOPES)
    directory = Directory(_emulator(request).tenant)
    return json_response(directory.get_client(request.match_info["id"], request.query))


# -- the conditions every call goes through -----------------------------------------------------


def _kind(path: str) -> str | None:
    if path.startswith("/api/v2/"):
        return "management"
    if path in ("/oauth/token", "/oauth/token/"):
        return "token"
    return None


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return f"{request.method} {resource.canonical if resource is not None else request.path}"


async def _count_post(request: web.Request, em: Emulator) -> None:
    try:
        body = await body_of(request)
    except ApiError:
        return
    if not isinstance(body, dict) or not isinstance(body.get("audience"), str):
        return
    client_id, default_for = body.get("client_id"), body.get("default_for")
    subject_type = body.get("subject_type", "client")
    if not all(isinstance(v, str | None) for v in (client_id, default_for, subject_type)):
        return
    key = grant_key(client_id, default_for, body["audience"], subject_type or "client")
    em.stats.posts_by_grant_key[format_key(key)] += 1


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run the handler, turning the errors it raises into Auth0's bodies."""
    try:
        return await handler(request)
    except ApiError as exc:
        return json_response(exc.body(), exc.status)
    except OAuthError as exc:
        return json_response(exc.body(), exc.status)
    except web.HTTPException as exc:  # no such route or method
        phrase = reason_phrase(exc.status)
        return json_response(
            {"statusCode": exc.status, "error": phrase, "message": phrase}, exc.status
        )


async def _with_fault(
    request: web.Request, handler: Handler, em: Emulator, faults: FaultSettings, fault: Fault
) -> web.StreamResponse | None:
    """The reply under `fault`; None means: close the connection without one."""
    if fault is Fault.DROP:
        return None
    if fault is Fault.ERROR:
        em.stats.injected_errors += 1
        return json_response(fault_body(faults.error_status), faults.error_status)
    if fault is Fault.ECHO:
        received = (await request.read()).decode("utf-8", "replace")
        authorization = request.headers.get("Authorization", "")
        return json_response(
            echo_body(faults.echo_status, authorization, received), faults.echo_status
        )
    if fault is Fault.HANG:
        em.stats.hung += 1
        await asyncio.sleep(faults.hang_s)
    response = await _answer(request, handler)
    if fault is Fault.COMMIT_LOST:
        em.stats.commit_lost += 1
        if faults.commit_lost_reply == "drop":
            return None
        return json_response(fault_body(faults.error_status), faults.error_status)
    return response


async def _carried_out_late(
    request: web.Request, handler: Handler, late: LateWrite
) -> web.StreamResponse | None:
    """Read the write now, carry it out `late.apply_after_s` from now even if the client has
    gone meanwhile (shielded from the handler's cancellation), then answer or not."""
    await request.read()

    async def later() -> web.StreamResponse:
        await asyncio.sleep(late.apply_after_s)
        return await _answer(request, handler)

    response = await asyncio.shield(asyncio.ensure_future(later()))
    return response if late.reply == "late" else None


def _drop(request: web.Request) -> web.StreamResponse:
    if request.transport is not None:
        request.transport.close()
    # Nothing reaches the client; aiohttp needs a response object all the same.
    return web.Response(status=500)


@web.middleware
async def conditions(request: web.Request, handler: Handler) -> web.StreamResponse:
    kind = _kind(request.path)
    if kind is None:
        return await handler(request)
    em = _emulator(request)
    em.stats.begin(_route(request))
    status: int | None = 500
    try:
        if request.method == "POST" and request.path == GRANTS_PATH:
            await _count_post(request, em)
        faults = em.faults  # one request sees one set of settings, even if changed meanwhile
        faulty = kind == "management" or faults.apply_to_token_endpoint
        if faulty and (faults.latency_ms or faults.jitter_ms):
            await asyncio.sleep(faults.delay_s(em.rng.random()))
        if em.outage_left_s() > 0:
            outage_reply = await _outage(request, em)
            status = None if outage_reply is None else outage_reply.status
            return _drop(request) if outage_reply is None else outage_reply
        if faults.create_latency_ms and request.method == "POST" and request.path == GRANTS_PATH:
            await asyncio.sleep(faults.create_latency_ms / 1000.0)
        decision: RateDecision | None = None
        if kind == "management" or em.rate_limit.apply_to_token_endpoint:
            decision = em.bucket.take()
        response: web.StreamResponse | None
        if decision is not None and not decision.allowed:
            em.stats.rate_limited += 1
            body = TOO_MANY_REQUESTS_BODY if kind == "management" else TOO_MANY_REQUESTS_OAUTH_BODY
            response = json_response(body, 429)
        elif kind == "management" and (late := em.take_late_write(request.method)) is not None:
            response = await _carried_out_late(request, handler, late)
        elif faulty and faults.any_fault and faults.hits(request.method):
            response = await _with_fault(
                request, handler, em, faults, faults.choose(em.rng.random())
            )
        else:
            response = await _answer(request, handler)
        if response is None:
            status = None
            return _drop(request)
        if decision is not None:
            response.headers.update(
                decision.headers(em.rate_limit.retry_after, em.rate_limit.absurd_reset)
            )
        status = response.status
        return response
    finally:
        em.stats.end(status)


async def _outage(request: web.Request, em: Emulator) -> web.StreamResponse | None:
    """The reply during an outage window: a 503, nothing (dropped), or nothing after hanging
    until the window ends."""
    em.stats.outage_replies += 1
    if em.outage_mode == "error":
        return json_response(fault_body(503), 503)
    if em.outage_mode == "hang":
        await asyncio.sleep(em.outage_left_s())
    return None


async def _other_applications(em: Emulator) -> None:
    """The tenant's other applications: one call every 1/background_rps s from its bucket."""
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while True:
        rps = em.background_rps
        if rps <= 0:
            await asyncio.sleep(0.1)
            next_at = loop.time()
            continue
        next_at += 1.0 / rps
        delay = next_at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -1.0:  # the loop was held up: do not catch up in a burst
            next_at = loop.time()
        em.stats.background_calls += 1
        if not em.bucket.take().allowed:
            em.stats.background_rate_limited += 1


def _background_context(
    app: web.Application,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def run(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_other_applications(app[EMULATOR]))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return run


def make_app(emulator: Emulator) -> web.Application:
    """The aiohttp application serving `emulator`."""
    app = web.Application(middlewares=[conditions])
    app[EMULATOR] = emulator
    app.cleanup_ctx.append(_background_context(app))
    app.router.add_post("/oauth/token", token)
    app.router.add_post("/oauth/token/", token)
    app.router.add_get(GRANTS_PATH, list_grants)
    app.router.add_post(GRANTS_PATH, create_grant)
    app.router.add_get(GRANTS_PATH + "/{id}", get_grant)
    app.router.add_patch(GRANTS_PATH + "/{id}", update_grant)
    app.router.add_delete(GRANTS_PATH + "/{id}", delete_grant)
    app.router.add_get(RESOURCE_SERVERS_PATH, list_resource_servers)
    # `{id:.+}`: an identifier (a URL) may hold an encoded slash.
    app.router.add_get(RESOURCE_SERVERS_PATH + "/{id:.+}", get_resource_server)
    app.router.add_get(CLIENTS_PATH, list_clients)
    app.router.add_get(CLIENTS_PATH + "/{id}", get_client)
    admin.add_routes(app, EMULATOR)
    return app
