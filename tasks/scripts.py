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
from collections.abc import Iterable
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
    scripts go by SHA alone. A script Redis no longer knows (a restart, a failover) had not run:
    it is loaded and run again after the pipeline, in order, in one more round trip, with the
    commands queued `after_scripts` (a WAIT that must follow the writes) run again after it.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._calls: list[tuple[Script | None, tuple[Any, ...], bool]] = []

    def script(self, script: Script, keys: list[Any], args: list[Any]) -> int:
        """Queue `script`; returns the position of its result."""
        self._calls.append((script, (len(keys), *keys, *args), False))
        return len(self._calls) - 1

    def command(self, *args: Any, after_scripts: bool = False) -> int:
        """Queue a plain command; returns its result's position. `after_scripts`: it must run
        after the scripts before it, even one Redis had to be given again."""
        self._calls.append((None, args, after_scripts))
        return len(self._calls) - 1

    def __len__(self) -> int:
        return len(self._calls)

    def execute(self) -> list[Any]:
        """Every result in order; a command Redis refused leaves its exception in its place
        (the caller decides which matter). A connection failure raises."""
        if not self._calls:
            return []
        results = self._send(range(len(self._calls)))
        unknown = [n for n, r in enumerate(results) if isinstance(r, NoScriptError)]
        if unknown:
            for position in unknown:
                script = self._calls[position][0]
                if script is not None:
                    self._client.script_load(script.script)
            again = [
                n for n in range(unknown[0], len(self._calls)) if n in unknown or self._calls[n][2]
            ]
            for position, result in zip(again, self._send(again), strict=True):
                results[position] = result
        return results

    def _send(self, positions: Iterable[int]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for position in positions:
            script, args, _ = self._calls[position]
            if script is None:
                pipe.execute_command(*args)
            else:
                pipe.execute_command("EVALSHA", script.sha, *args)
        return list(pipe.execute(raise_on_error=False))
