"""The one loader of the project's Lua scripts.

Each script is a `.lua` file in a `lua/` folder beside the module that owns the state it
changes (`tasks/flow/lua/`, `tasks/outcomes/lua/`, …), so the script and the Python that reads
its results are read together, and an editor or a linter sees Lua as Lua. Scripts are read once
per process and registered with redis-py, which runs them by SHA and loads them again after a
Redis restart or failover (`NOSCRIPT`). No two scripts share a file name, so a name found in a
log or a `SCRIPT` listing leads to one file.

    take = register(client, __package__, "replay_dead_letter.lua")

A script made of parts (a shared head, say) names them in order; they run as one script:

    acquire = register(client, __package__, "pace_model.lua", "pace_acquire.lua")
"""

from __future__ import annotations

import functools
from importlib import resources

import redis
from redis.commands.core import Script


@functools.cache
def script_text(package: str, name: str) -> str:
    """The text of `lua/{name}` beside the modules of `package` (e.g. `__package__`)."""
    return resources.files(package).joinpath("lua", name).read_text(encoding="utf-8")


def register(client: redis.Redis, package: str | None, *names: str) -> Script:
    """`lua/{name}` of `package` (several: joined in order, as one script), registered on
    `client`; call it as redis-py's `Script`."""
    if package is None:  # pragma: no cover - only a module run as a script has no package
        raise ValueError("scripts belong to a package; pass the owner's __package__")
    if not names:
        raise ValueError("name at least one script")
    return client.register_script("".join(script_text(package, name) for name in names))
