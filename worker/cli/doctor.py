"""`grants doctor`: checks of the configuration, Redis, the tenant and the clocks, each with a fix.

Every check ends as pass, warn or fail; the command exits 1 when any check failed. It writes
nothing but short-lived probe keys under the key prefix (deleted at once), and it calls Auth0
twice at most (a token, one page of client grants), so it is safe against production.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Literal

import click
import redis
import requests

from grant_worker.config.settings import (
    Settings,
    SettingsInvalid,
    load_settings,
    unknown_env_file_variables,
    unknown_grants_variables,
)
from grant_worker.tasks.connections import make_redis
from grant_worker.tasks.keys import Keys
from grant_worker.worker.cli.base import echo_json, rich_safe
from grant_worker.worker.exit_codes import EXIT_DONE, EXIT_FAILED

Verdict = Literal["pass", "warn", "fail"]

MIN_REDIS = (6, 2)  # XAUTOCLAIM (intake bridge), SET … PX, XADD MAXLEN ~
NEEDED_SCOPES = ("create:client_grants", "read:client_grants", "update:client_grants")
SKEW_WARN_S = 1.0
SKEW_FAIL_S = 5.0


@dataclass
class Check:
    area: str
    name: str
    verdict: Verdict
    detail: str
    fix: str = ""


def check_configuration(environ: dict[str, str]) -> tuple[list[Check], Settings | None]:
    checks = []
    try:
        settings = load_settings()
    except SettingsInvalid as exc:
        return [
            Check(
                "config",
                "settings",
                "fail",
                str(exc),
                "correct the variables named (environment or .env)",
            )
        ], None
    checks.append(Check("config", "settings", "pass", "every setting is valid"))
    for warning in unknown_grants_variables(environ) + unknown_env_file_variables():
        checks.append(Check("config", "unknown variable", "warn", warning, "rename or remove it"))
    try:
        settings.require_auth0()
        checks.append(Check("config", "auth0", "pass", f"tenant {settings.auth0_base_url}"))
    except ValueError as exc:
        checks.append(
            Check("config", "auth0", "fail", str(exc), "set AUTH0_DOMAIN and credentials")
        )
    return checks, settings


def check_redis(client: redis.Redis, settings: Settings) -> list[Check]:
    try:
        client.ping()
    except redis.RedisError as exc:
        fix = (
            "check the user and password in REDIS_URL"
            if isinstance(exc, redis.AuthenticationError)
            else "check that Redis runs and that REDIS_URL names its host and port"
        )
        return [Check("redis", "connect", "fail", f"{type(exc).__name__}: {exc}", fix)]
    checks = [Check("redis", "connect", "pass", "PING answered")]
    server = _info(client, "server")
    version = str(server.get("redis_version", "0"))
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts >= MIN_REDIS:
        checks.append(Check("redis", "version", "pass", f"Redis {version}"))
    else:
        checks.append(
            Check("redis", "version", "fail", f"Redis {version}", "use Redis 6.2 or later")
        )
    persistence = _info(client, "persistence")
    if str(persistence.get("aof_enabled", "0")) == "1":
        checks.append(Check("redis", "appendonly", "pass", "append-only file on"))
    else:
        checks.append(
            Check(
                "redis",
                "appendonly",
                "warn",
                "append-only file off: a restart loses queued messages written since the "
                "last snapshot",
                "CONFIG SET appendonly yes (and in redis.conf)",
            )
        )
    memory = _info(client, "memory")
    policy = str(memory.get("maxmemory_policy", "unknown"))
    if policy == "noeviction":
        checks.append(Check("redis", "maxmemory-policy", "pass", "noeviction"))
    else:
        checks.append(
            Check(
                "redis",
                "maxmemory-policy",
                "fail",
                f"{policy}: a full Redis would drop queued messages and outcome records",
                "CONFIG SET maxmemory-policy noeviction (and in redis.conf)",
            )
        )
    maxmemory = int(memory.get("maxmemory", 0) or 0)
    if maxmemory:
        used = int(memory.get("used_memory", 0) or 0)
        checks.append(
            Check("redis", "maxmemory", "pass", f"{used / maxmemory:.0%} of {maxmemory} bytes")
        )
    else:
        checks.append(
            Check(
                "redis",
                "maxmemory",
                "warn",
                "no maxmemory: noeviction never applies, and a full host kills Redis instead",
                "CONFIG SET maxmemory <bytes> (e.g. 75% of the container's memory)",
            )
        )
    checks.extend(check_rights(client, settings))
    checks.append(check_clock(client))
    return checks


def _info(client: redis.Redis, section: str) -> dict[str, Any]:
    try:
        return dict(client.info(section))
    except redis.RedisError:
        return {}


def _needed_commands(settings: Settings) -> list[list[str]]:
    keys = Keys(settings.grants_key_prefix)
    queue = settings.grants_queue
    return [
        ["LPUSH", queue, "x"],
        ["BRPOP", queue, "1"],
        ["SADD", Keys.kombu_binding(queue), "x"],
        ["SET", keys.outcome_record("doctor"), "x"],
        ["XADD", keys.results, "*", "f", "v"],
        ["XADD", keys.dead, "*", "f", "v"],
        ["XREADGROUP", "GROUP", keys.intake_group, "c", "STREAMS", keys.intake, ">"],
        ["HSET", keys.unacked, "f", "v"],
        ["ZADD", keys.unacked_index, "1", "x"],
        ["EVALSHA", "0" * 40, "1", keys.pace],
        ["PUBLISH", keys.events, "x"],
        ["SUBSCRIBE", keys.control_pidbox],
    ]


def check_rights(client: redis.Redis, settings: Settings) -> list[Check]:
    """ACL rights for every command and key the worker needs (ACL DRYRUN), else probes."""
    try:
        user = str(client.acl_whoami())
        denied = []
        for command in _needed_commands(settings):
            answer = client.execute_command("ACL", "DRYRUN", user, *command)
            if str(answer) != "OK":
                denied.append(f"{command[0]} {command[1]}: {answer}")
    except redis.RedisError:
        return [_probe_rights(client, settings)]
    if denied:
        return [
            Check(
                "redis",
                "acl",
                "fail",
                f"user {user} may not: " + "; ".join(denied),
                f"grant the user ~{Keys(settings.grants_key_prefix).pattern} "
                f"~{settings.grants_queue}* "
                "~_kombu.* &* and +@all -@dangerous (or the commands named)",
            )
        ]
    return [Check("redis", "acl", "pass", f"user {user} may run every command on the keys needed")]


def _probe_rights(client: redis.Redis, settings: Settings) -> Check:
    keys = Keys(settings.grants_key_prefix)
    token = uuid.uuid4().hex
    probe, stream = keys.doctor_probe(token), keys.doctor_probe_stream(token)
    try:
        client.set(probe, "1", px=5000)
        client.xadd(stream, {"f": "v"})
        client.eval("return redis.call('GET', KEYS[1])", 1, probe)
        client.llen(settings.grants_queue)
    except redis.RedisError as exc:
        return Check(
            "redis",
            "acl",
            "fail",
            f"a write under the prefix was refused: {type(exc).__name__}: {exc}",
            f"grant the user ~{keys.pattern} ~{settings.grants_queue}* ~_kombu.*",
        )
    finally:
        with contextlib.suppress(redis.RedisError):
            client.delete(probe, stream)
    return Check(
        "redis",
        "acl",
        "warn",
        "writes under the prefix work; rights on the queue could not be verified "
        "(ACL DRYRUN not allowed to this user)",
        "verify the user's rights on the queue and _kombu.* keys with an admin's ACL DRYRUN",
    )


def check_clock(client: redis.Redis) -> Check:
    before = time.time()
    seconds, micros = client.time()
    after = time.time()
    skew = (int(seconds) + int(micros) / 1e6) - (before + after) / 2
    detail = f"this host is {abs(skew):.3f} s {'behind' if skew > 0 else 'ahead of'} Redis"
    fix = "run NTP (chrony, systemd-timesyncd) on this host and on Redis's"
    if abs(skew) >= SKEW_FAIL_S:
        return Check("clock", "skew", "fail", detail, fix)
    if abs(skew) >= SKEW_WARN_S:
        return Check("clock", "skew", "warn", detail, fix)
    return Check("clock", "skew", "pass", detail)


def token_scopes(token: str) -> list[str] | None:
    """The `scope` claim of a JWT access token (not verified: only read), or None."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    scope = claims.get("scope") if isinstance(claims, dict) else None
    return scope.split() if isinstance(scope, str) else None


def check_tenant(settings: Settings) -> list[Check]:
    from grant_worker.tasks.auth0.api import GRANTS_PATH, LIST_GRANTS, make_api
    from grant_worker.tasks.auth0.diagnosis import diagnose
    from grant_worker.tasks.auth0.proxies import proxy_address
    from grant_worker.tasks.auth0.session import make_session, tenant_proxy
    from grant_worker.tasks.auth0.translate import management_error, network_error
    from grant_worker.tasks.errors import Auth0Error

    session = make_session(settings)
    proxy = tenant_proxy(settings)
    via = f" through the proxy {proxy_address(proxy)}" if proxy else ""
    # What the tenant must not echo back into a check's text: the token and the client secret
    # (`translate.redact`, applied before the diagnosis is written).
    secrets: tuple[str, ...] = ()
    if settings.auth0_client_secret is not None:
        secrets = (settings.auth0_client_secret.get_secret_value(),)
    try:
        if settings.auth0_token is not None:
            token = settings.auth0_token.get_secret_value()
            source = "AUTH0_TOKEN"
        else:
            api = make_api(settings, session)
            if api.secrets is not None and api.secrets.current.client_secret is not None:
                secrets = (api.secrets.current.client_secret.get_secret_value(),)
            token = api.fetch_token().access_token.get_secret_value()
            source = "client credentials"
    except Auth0Error as exc:
        found = diagnose(exc, settings)
        return [Check("tenant", "token", "fail", found.detail, found.fix)]
    checks = [Check("tenant", "token", "pass", f"a token from {source}{via}")]
    scopes = token_scopes(token)
    if scopes is None:
        checks.append(
            Check("tenant", "scopes", "warn", "the token is not a readable JWT", "use a JWT")
        )
    else:
        missing = [scope for scope in NEEDED_SCOPES if scope not in scopes]
        checks.append(
            Check(
                "tenant",
                "scopes",
                "fail" if missing else "pass",
                f"missing {', '.join(missing)}" if missing else ", ".join(NEEDED_SCOPES),
                "grant the scopes to the application under APIs → Auth0 Management API"
                if missing
                else "",
            )
        )
    try:
        response = session.get(
            f"{settings.auth0_base_url}{GRANTS_PATH}",
            params={"per_page": "1"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=(settings.grants_connect_timeout_s, settings.grants_read_timeout_s),
        )
    except requests.RequestException as exc:
        found = diagnose(network_error(exc, LIST_GRANTS), settings)
        checks.append(Check("tenant", "api", "fail", found.detail, found.fix))
        return checks
    if response.ok:
        checks.append(
            Check("tenant", "api", "pass", f"GET {GRANTS_PATH} answered {response.status_code}")
        )
    else:
        error = management_error(
            response.status_code,
            response.headers,
            response.content,
            now_epoch_s=time.time(),
            secrets=(token, *secrets),
            client_id=settings.auth0_client_id,
        )
        error.endpoint = LIST_GRANTS
        found = diagnose(error, settings)
        checks.append(
            Check("tenant", "api", "fail", f"GET {GRANTS_PATH}: {found.detail}", found.fix)
        )
    limit = response.headers.get("x-ratelimit-limit")
    if limit is None:
        checks.append(
            Check(
                "tenant",
                "rate-limit headers",
                "warn",
                "no x-ratelimit-* headers: the fleet cannot learn the tenant's pace",
                "set an explicit GRANTS_RATE_LIMIT",
            )
        )
    else:
        # Only numbers are repeated: a header is text from outside, and may echo anything.
        remaining = response.headers.get("x-ratelimit-remaining", "")
        limit, remaining = (v if v.isdigit() else "unreadable" for v in (limit, remaining))
        checks.append(
            Check("tenant", "rate-limit headers", "pass", f"limit {limit}, remaining {remaining}")
        )
    return checks


def run_checks(environ: dict[str, str]) -> list[Check]:
    checks, settings = check_configuration(environ)
    if settings is None:
        return checks
    client = make_redis(settings)
    try:
        checks.extend(check_redis(client, settings))
    finally:
        client.close()
    if not any(c.area == "config" and c.verdict == "fail" for c in checks):
        checks.extend(check_tenant(settings))
    return checks


_MARKS: dict[Verdict, str] = {
    "pass": "[green]pass[/]",
    "warn": "[yellow]warn[/]",
    "fail": "[red]FAIL[/]",
}


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per check.")
def doctor_command(as_json: bool) -> None:
    """Check the configuration, Redis, the tenant and the clocks; exit 1 on any failure."""
    from rich.console import Console

    checks = run_checks(dict(os.environ))
    if as_json:
        for check in checks:
            echo_json(asdict(check))
    else:
        console = Console(file=sys.stdout, soft_wrap=True)
        for check in checks:
            line = f"{check.area}/{check.name}: {check.detail}"
            console.print(f"{_MARKS[check.verdict]} {rich_safe(line)}", highlight=False)
            if check.fix and check.verdict != "pass":
                console.print(f"      fix: {rich_safe(check.fix)}", highlight=False)
    failed = sum(check.verdict == "fail" for check in checks)
    sys.exit(EXIT_FAILED if failed else EXIT_DONE)
