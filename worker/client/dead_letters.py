"""The dead-letter stream, operable: list, show, replay and purge failed or rejected requests.

Replay re-validates the original request and enqueues it again under the same request id, after
forgetting its outcome record and delivery count, so the worker works on it afresh while Auth0's
uniqueness still keeps it from creating a grant twice. The id stays owned by its request
meanwhile: the record's fingerprint goes back into a claim (`tasks.outcomes.claims`).

Each letter is replayed exactly once, however many replays run at once: a replay takes a letter
by deleting it from the dead stream, in the same atomic step that forgets the record
(`tasks.outcomes.replays`, which alone here knows the record's format), and only the replay
whose delete removed it enqueues the request. The others report it `skipped`.
A `request_id_reused` letter is not replayed: its request id belongs to another request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import redis

from grant_worker.tasks.errors import RequestInvalid
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.models import GrantRequest
from grant_worker.tasks.messages.validation import parse_request
from grant_worker.tasks.outcomes.letters import DeadLetter, dead_letter
from grant_worker.tasks.outcomes.replays import DeadLetterReplays
from grant_worker.tasks.outcomes.streams import entries_between
from grant_worker.worker.client.grant_client import GrantClient

PAGE = 500


@dataclass(frozen=True)
class ReplayResult:
    entry_id: str
    request_id: str
    action: Literal["replayed", "would replay", "invalid", "skipped"]
    reason: str | None = None


class DeadLetters:
    def __init__(self, client: GrantClient) -> None:
        self._client = client
        self._redis: redis.Redis = client.redis
        self._keys: Keys = client.keys
        self._replays = DeadLetterReplays(
            self._redis, self._keys, claim_ttl_s=client.settings.grants_record_ttl_s
        )

    def all(self, *, code: str | None = None, batch_id: str | None = None) -> Iterator[DeadLetter]:
        """Every dead letter, oldest first, optionally only those with error code `code` and
        of batch `batch_id`."""
        low = "-"
        while True:
            entries = entries_between(self._redis, self._keys.dead, low=low, count=PAGE)
            for entry_id, fields in entries:
                letter = dead_letter(entry_id, fields)
                if (code is None or letter.code == code) and (
                    batch_id is None or letter.batch_id == batch_id
                ):
                    yield letter
            if len(entries) < PAGE:
                return
            low = f"({entries[-1][0]}"

    def find(self, ident: str) -> DeadLetter | None:
        """The dead letter with stream entry id `ident`, else the newest for request id `ident`."""
        if "-" in ident and ident.replace("-", "").isdigit():
            entries = entries_between(self._redis, self._keys.dead, low=ident, high=ident)
            if entries:
                return dead_letter(*entries[0])
        newest = None
        for letter in self.all():
            if letter.request_id == ident:
                newest = letter
        return newest

    def replay(self, letters: list[DeadLetter], *, dry_run: bool = False) -> list[ReplayResult]:
        """Re-enqueue each letter's request under its request id; invalid ones stay dead."""
        results = []
        for letter in letters:
            if letter.unreadable:
                reason = f"unreadable: {letter.unreadable}; purge it or fix it by hand"
                results.append(ReplayResult(letter.entry_id, letter.request_id, "invalid", reason))
                continue
            original = letter.letter.get("request")
            try:
                request = parse_request(original)
            except RequestInvalid as exc:
                results.append(
                    ReplayResult(letter.entry_id, letter.request_id, "invalid", exc.message)
                )
                continue
            if disagreement := _disagreement(letter, request):
                results.append(
                    ReplayResult(letter.entry_id, letter.request_id, "invalid", disagreement)
                )
                continue
            if letter.code == "request_id_reused":
                reason = (
                    f"request id {letter.request_id} belongs to another request; "
                    "submit this one under an id of its own"
                )
                results.append(ReplayResult(letter.entry_id, letter.request_id, "invalid", reason))
                continue
            if request.request_id is None:
                request = request.model_copy(update={"request_id": letter.request_id})
            if dry_run:
                results.append(ReplayResult(letter.entry_id, letter.request_id, "would replay"))
                continue
            if not self._replays.take(letter.entry_id, letter.request_id, request):
                reason = "already replayed or purged by someone else"
                results.append(ReplayResult(letter.entry_id, letter.request_id, "skipped", reason))
                continue
            try:
                self._client.submit(request)
            except Exception:
                # Not enqueued: the letter goes back, to be replayed again.
                self._put_back(letter)
                raise
            results.append(ReplayResult(letter.entry_id, letter.request_id, "replayed"))
        return results

    def _put_back(self, letter: DeadLetter) -> None:
        fields = {
            "request_id": letter.request_id,
            "status": str(letter.letter.get("status")),
            "dead": json.dumps(letter.letter, separators=(",", ":")),
        }
        self._redis.xadd(self._keys.dead, fields)  # type: ignore[arg-type]

    def purge(self, letters: list[DeadLetter]) -> int:
        """Delete these dead letters; returns how many were deleted."""
        if not letters:
            return 0
        return int(self._redis.xdel(self._keys.dead, *[letter.entry_id for letter in letters]))


def _disagreement(letter: DeadLetter, request: GrantRequest) -> str | None:
    """Why the letter's parts name different requests, or None when they agree.

    A replay runs the nested request and forgets the records of the listed id: were they
    different, the operator would see one request replayed and another run, and the records of
    the one seen cleared for the sake of the other.
    """
    listed = letter.request_id
    if letter.listed_id is not None and letter.listed_id != listed:
        return f"listed as {letter.listed_id!r} but the letter is of {listed!r}; not replayed"
    if request.request_id is not None and request.request_id != listed:
        return (
            f"the letter is of {listed!r} but its request is {request.request_id!r}; not replayed"
        )
    if request.batch_id != letter.batch_id:
        return (
            f"the letter is of batch {letter.batch_id!r} but its request of "
            f"{request.batch_id!r}; not replayed"
        )
    return None
