"""Taking a dead letter for replay: the one step that forgets an outcome so it can be worked again.

The dead stream, the outcome record and the request id's claim are all written here in
`tasks.outcomes`, and so is the step that undoes them for a replay, in one Lua script
(`lua/replay_dead_letter.lua`): the letter leaves the dead stream, the record and the delivery
count are forgotten, and the fingerprint the record carried goes back into a claim, so that the
request id stays owned by its request while the replay is queued (`tasks.outcomes.claims`).
The script reads the record's fingerprint in the format `tasks.outcomes.records` owns; callers
(`worker.client.dead_letters`) know neither format.

Each letter is taken exactly once, however many replays run at once: the step begins with the
XDEL of the letter, and only the caller whose XDEL removed it changes anything.
"""

from __future__ import annotations

import json

import redis

from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.models import GrantRequest
from grant_worker.tasks.outcomes.claims import fingerprint, normalised
from grant_worker.tasks.scripts import register


class DeadLetterReplays:
    def __init__(self, client: redis.Redis, keys: Keys, *, claim_ttl_s: int) -> None:
        self._keys = keys
        self._claim_ttl_s = claim_ttl_s
        self._take = register(client, __package__, "replay_dead_letter.lua")

    def take(self, entry_id: str, request_id: str, request: GrantRequest) -> bool:
        """Take the dead letter `entry_id` of `request_id` for a replay of `request`: True when
        this call took it (its outcome is forgotten, the id claimed for its owner), False when
        it was gone (replayed or purged by someone else; nothing changed)."""
        keys = [
            self._keys.dead,
            self._keys.outcome_record(request_id),
            self._keys.deliveries(request_id),
            self._keys.claim(request_id),
        ]
        mine = fingerprint(request)
        claim = json.dumps({"fingerprint": mine, "request": normalised(request)})
        return bool(self._take(keys=keys, args=[entry_id, claim, mine, self._claim_ttl_s]))
