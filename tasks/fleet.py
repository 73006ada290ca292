"""The register of worker processes and their heartbeats: the one writer and reader of both.

- `Keys.workers`: a set of identities, `hostname/boot` (`Identity`; `boot` is new at every
  start, so a restarted worker with the same name is told apart from its previous life);
- `Keys.heartbeat(identity)`: a JSON object written by `beat` every GRANTS_HEARTBEAT_INTERVAL_S
  and expiring after GRANTS_HEARTBEAT_TTL_S: what the worker's watchdog saw (`at` epoch s,
  `busy`, `capacity`, `queued`, `idle_s`, `stalled`, `broker_ready`, `bridge_alive`, ...),
  the queues it consumes (`queues`, a list; absent in beats of older workers) and where it runs
  (`identity`, `boot`, `space`, `pid`).

Keyed by identity, not by host name: two live workers started under one name (two
`grants worker` on one machine without `--hostname`) would otherwise overwrite each other's
beat and each take the other for dead.

Writers: `beat` (the watchdog), `forget` (a clean exit), `release` (the survivor that restored
a lapsed worker's messages, `worker.process.recovery`). Readers: `registered` and `is_alive`
for the recovery sweep; `read_beats` for `grants status` and the dashboard; `fleet_reporter`
for the worker's scrape-time gauges.
"""

from __future__ import annotations

import functools
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import redis

from grant_worker.tasks.keys import Keys


@dataclass(frozen=True)
class Identity:
    """One life of one worker process."""

    hostname: str
    boot: str

    @classmethod
    def new(cls, hostname: str) -> Identity:
        return cls(hostname, uuid.uuid4().hex[:12])

    @classmethod
    def parse(cls, text: str) -> Identity:
        hostname, _, boot = text.rpartition("/")
        return cls(hostname, boot)

    def __str__(self) -> str:
        return f"{self.hostname}/{self.boot}"


@dataclass(frozen=True)
class WorkerBeat:
    """A registered worker and what its last heartbeat said. `current` is False when the
    heartbeat lapsed or cannot be read; every fact is None then."""

    identity: str
    current: bool
    at: float | None = None
    busy: int | None = None
    capacity: int | None = None
    queued: int | None = None
    idle_s: float | None = None
    stalled: bool = False
    # None: the beat does not say (a worker older than the field).
    queues: tuple[str, ...] | None = None

    @property
    def hostname(self) -> str:
        """The host name the worker was started under, without its boot."""
        return self.identity.rpartition("/")[0] or self.identity

    def may_consume(self, queue: str) -> bool:
        """A current beat of a worker on `queue` (or one whose beat does not name its queues:
        such an older worker is given the benefit of the doubt)."""
        return self.current and (self.queues is None or queue in self.queues)

    def fresh(self, now: float, within_s: float) -> bool:
        """Its last beat is at most `within_s` old at `now`."""
        return self.current and self.at is not None and now - self.at <= within_s


def beat(
    client: redis.Redis, keys: Keys, identity: Identity, facts: dict[str, Any], ttl_s: float
) -> None:
    """Write the heartbeat of `identity` (with `facts`) and keep it in the register."""
    payload = {
        **facts,
        "identity": str(identity),
        "boot": identity.boot,
        # Where the process runs, so that its next life in the same process space can tell at
        # once that it is gone (`is_alive`).
        "space": process_space(),
        "pid": os.getpid(),
    }
    pipe = client.pipeline(transaction=True)
    pipe.set(keys.heartbeat(str(identity)), json.dumps(payload), px=int(ttl_s * 1000))
    pipe.sadd(keys.workers, str(identity))
    pipe.execute()


def forget(client: redis.Redis, keys: Keys, identity: Identity) -> None:
    """A clean exit: nothing held any more, no heartbeat to wait for."""
    pipe = client.pipeline(transaction=True)
    pipe.srem(keys.workers, str(identity))
    pipe.delete(keys.held(str(identity)))
    pipe.delete(keys.heartbeat(str(identity)))
    pipe.execute()


def release(client: redis.Redis, keys: Keys, identity: Identity) -> None:
    """A recovered worker: its held tags are restored, so the set and its registration go
    together (a heartbeat that is still there lapses by itself)."""
    pipe = client.pipeline(transaction=True)
    pipe.delete(keys.held(str(identity)))
    pipe.srem(keys.workers, str(identity))
    pipe.execute()


def registered(client: redis.Redis, keys: Keys) -> list[Identity]:
    """Every identity in the register, alive or not."""
    members = cast(set[Any], client.smembers(keys.workers))
    return [Identity.parse(_text(member)) for member in members]


def is_alive(client: redis.Redis, keys: Keys, identity: Identity) -> bool:
    """Its heartbeat has not lapsed, and it is not a finished process of our process space."""
    raw = client.get(keys.heartbeat(str(identity)))
    if not raw:
        return False
    try:
        beat = json.loads(raw)
        space, pid = beat.get("space"), beat.get("pid")
    except (ValueError, AttributeError):
        return True  # a beat we cannot read is still a beat: wait for it to lapse
    here = process_space()
    if here is None or space != here or not isinstance(pid, int) or pid == os.getpid():
        return True
    return _process_exists(pid)


def read_beats(client: redis.Redis, keys: Keys, *, limit: int | None = None) -> list[WorkerBeat]:
    """The registered workers, by identity, each with its heartbeat (one MGET).

    With `limit`, at most that many members, from an incremental scan of the register (a
    page stays bounded however many identities it holds); without, the whole register.
    """
    if limit is None:
        members = [_text(m) for m in cast(set[Any], client.smembers(keys.workers))]
    else:
        members = []
        for member in client.sscan_iter(keys.workers, count=limit):
            members.append(_text(member))
            if len(members) >= limit:
                break
    if not members:
        return []
    members.sort()
    raws = cast(list[Any], client.mget([keys.heartbeat(m) for m in members]))
    return [_beat_of(member, raw) for member, raw in zip(members, raws, strict=True)]


def fleet_reporter(client: redis.Redis, keys: Keys) -> str | None:
    """The worker that serves the fleet-wide gauges: the live one whose identity sorts first,
    or None while no worker has a current heartbeat.

    Every worker decides alike from the register, so exactly one serves them once the beats
    are in, and another takes over within a heartbeat TTL when it goes.
    """
    return next((beat.identity for beat in read_beats(client, keys) if beat.current), None)


def _beat_of(identity: str, raw: Any) -> WorkerBeat:
    try:
        beat = json.loads(raw) if raw else None
    except (ValueError, TypeError):
        beat = None
    if not isinstance(beat, dict) or not beat:
        return WorkerBeat(identity, current=False)
    busy, capacity, queued = (_number(beat.get(name)) for name in ("busy", "capacity", "queued"))
    return WorkerBeat(
        identity,
        current=True,
        at=_number(beat.get("at")),
        busy=int(busy) if busy is not None else None,
        capacity=int(capacity) if capacity is not None else None,
        queued=int(queued) if queued is not None else None,
        idle_s=_number(beat.get("idle_s")),
        stalled=bool(beat.get("stalled")),
        queues=_queues(beat.get("queues")),
    )


def _queues(value: Any) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        return None
    return tuple(q for q in value if isinstance(q, str))


@functools.cache
def process_space() -> str | None:
    """Names the set of processes `os.kill(pid, 0)` can see: this kernel's boot and this PID
    namespace. Not the host name: two containers may share one, each with its own process
    numbers, and a restarted container has a new namespace. None where Linux's /proc is not
    there (the heartbeat's lapse alone decides then)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{namespace}"


def _process_exists(pid: int) -> bool:
    """Whether a process `pid` runs here. When unsure (a reused pid, no permission), yes: the
    heartbeat's lapse then decides, a few seconds later."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _number(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
