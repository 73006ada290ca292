"""Which egress proxy, if any, carries the calls to the tenant (pure).

The standard variables, as curl and requests read them: `HTTPS_PROXY` for an https tenant,
`HTTP_PROXY` for a plain-http one (a local emulator), and `NO_PROXY` naming the hosts reached
directly. `NO_PROXY` is a comma-separated list of host names (`auth0.com` also covers
`tenant.eu.auth0.com`; a leading dot or `*.` means the same), IP addresses, CIDR blocks
(`10.0.0.0/8`), any of them with `:port`, or `*` for every host.

The session reads these from `Settings` only, never from the process environment at call time:
`trust_env` stays off so that `.netrc` credentials and CA bundles from outside are not used.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def proxy_for(
    url: str, *, https_proxy: str | None, http_proxy: str | None, no_proxy: str | None
) -> str | None:
    """The proxy URL for `url`, or None to connect directly."""
    parts = urlsplit(url)
    proxy = https_proxy if parts.scheme == "https" else http_proxy
    if not proxy or not parts.hostname:
        return None
    if "://" not in proxy:
        proxy = f"http://{proxy}"  # curl's reading of a bare host:port
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if bypasses(parts.hostname, port, no_proxy or ""):
        return None
    return proxy


def bypasses(host: str, port: int, no_proxy: str) -> bool:
    """Whether `NO_PROXY` names `host` (at `port`)."""
    host = host.lower().strip("[]")
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        name, entry_port = _split_port(entry)
        if entry_port is not None and entry_port != port:
            continue
        if _matches(host, name):
            return True
    return False


def proxy_address(proxy: str) -> str:
    """`host:port` of a proxy URL, for messages: never its user or password."""
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or "?"
    return f"{host}:{port}" if port else host


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [::1]:8080
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port) if port.isdigit() else None
    return entry, None


def _matches(host: str, name: str) -> bool:
    name = name.removeprefix("*.").lstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == name or host.endswith(f".{name}")
    try:
        return address in ipaddress.ip_network(name, strict=False)
    except ValueError:
        return False
