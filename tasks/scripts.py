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
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError


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


class ScriptPipeline:
    """Scripts (by SHA) and plain commands sent to Redis in one round trip, no transaction.

    redis-py's own pipeline asks `SCRIPT EXISTS` before every execution that holds a script: a
    round trip and a command of its own each time, which is what a pipeline is for saving. Here
    scripts go by SHA alone, and one that Redis no longer knows (a restart, a failover) is run
    again on its own after the pipeline, which loads it: it had not run, so nothing runs twice.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._pipe = client.pipeline(transaction=False)
        self._scripts: dict[int, tuple[Script, list[Any], list[Any]]] = {}
        self._size = 0

    def script(self, script: Script, keys: list[Any], args: list[Any]) -> int:
        """Queue `script`; returns the position of its result."""
        self._pipe.evalsha(script.sha, len(keys), *keys, *args)
        self._scripts[self._size] = (script, keys, args)
        self._size += 1
        return self._size - 1

    def command(self, *args: Any, **options: Any) -> int:
        """Queue a plain command (`execute_command`'s arguments); returns its result's position."""
        self._pipe.execute_command(*args, **options)
        self._size += 1
        return self._size - 1

    def __len__(self) -> int:
        return self._size

    def execute(self) -> list[Any]:
        """Every result in order; a command Redis refused leaves its exception in its place
        (the caller decides which matter). A connection failure raises."""
        if not self._size:
            return []
        results: list[Any] = self._pipe.execute(raise_on_error=False)
        for position, result in enumerate(results):
            if isinstance(result, NoScriptError) and position in self._scripts:
                script, keys, args = self._scripts[position]
                try:
                    results[position] = script(keys=keys, args=args, client=self._client)
                except redis.ResponseError as exc:
                    results[position] = exc
        return results
