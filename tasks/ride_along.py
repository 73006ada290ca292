"""Writes that ride along with a request's next round trip to Redis instead of making their own.

What the fleet learns from an answer (`tasks.flow.pace`) need not reach Redis before the
request's next step does. Sent on its own, each lesson costs a round trip, and a round trip is
latency when Redis is a zone away. Queued here, the lessons go ahead of the request's next
write in the same pipeline: the next call's pace slot, or the outcome record. A request that
ends without either sends them on their own (`flush`).

Order is kept: a write queued first reaches Redis first, and before the write it rides with.
A crash before they are sent loses them as it would have lost them a moment later: a lesson
the fleet missed is learned again from the next answer.

One per request, used by the thread that works on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from redis.commands.core import Script

from grant_worker.tasks.scripts import ScriptPipeline

log = logging.getLogger(__name__)

Queue = Callable[[ScriptPipeline], object]
Then = Callable[[Any], None]


@dataclass(frozen=True)
class SetOnce:
    """`SET key value NX EX ttl_s`, for a script of another step to make when, and only when,
    that step goes ahead (the sent marker's `sending`, made by the pace slot of the POST)."""

    key: str
    value: str
    ttl_s: int


@dataclass(frozen=True)
class _Write:
    # What the write is, for a log line when Redis refuses it.
    what: str
    queue: Queue
    then: Then | None


class RideAlong:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._writes: list[_Write] = []

    def add(self, what: str, queue: Queue, then: Then | None = None) -> None:
        """Queue a write: `queue` puts its one command or script on a pipeline, and `then` is
        given its result once it ran (not called when Redis refused it)."""
        self._writes.append(_Write(what, queue, then))

    def __bool__(self) -> bool:
        return bool(self._writes)

    def send_with(self, fill: Queue) -> list[Any]:
        """One round trip: the queued writes, then what `fill` puts on the pipeline; returns the
        results of `fill`'s part, in order. A queued write Redis refused is logged and dropped:
        it must not undo the step it rode with."""
        writes, self._writes = self._writes, []
        pipe = ScriptPipeline(self._client)
        for write in writes:
            before = len(pipe)
            write.queue(pipe)
            if len(pipe) != before + 1:
                raise ValueError(f"{write.what}: a ride-along write is one command or script")
        ours = len(pipe)
        fill(pipe)
        results = pipe.execute()
        for write, result in zip(writes, results[:ours], strict=True):
            if isinstance(result, Exception):
                log.warning("%s not written: %s", write.what, result)
            elif write.then is not None:
                write.then(result)
        return results[ours:]

    def flush(self, *, quiet: bool = False) -> None:
        """Send what is queued, on its own (the request ended without another write).
        `quiet`: a failure is logged, not raised (the request is failing for another reason,
        which must not be hidden)."""
        if not self._writes:
            return
        try:
            self.send_with(lambda pipe: None)
        except redis.RedisError as exc:
            if not quiet:
                raise
            log.warning("writes of a failing request not sent: %s", exc)


def run_script(
    script: Script, keys: list[Any], args: list[Any], *, later: RideAlong | None = None
) -> Any:
    """Run `script` now; with `later`, its queued writes go ahead of it in the same round trip.
    Raises what Redis raised for the script."""
    if not later:
        return script(keys=keys, args=args)
    (answer,) = later.send_with(lambda pipe: pipe.script(script, keys, args))
    if isinstance(answer, Exception):
        raise answer
    return answer
