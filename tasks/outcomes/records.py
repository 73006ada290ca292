"""The per-request outcome record: a pointer into the results stream, not a copy of the outcome.

The results stream already carries every outcome in full (the contract), so the record
`Keys.outcome_record(id)` only says where: one short string, written by the recorder's script
right after its XADD,

    "{status letter} {results entry id} {fingerprint}"      e.g. "c 1764224961234-0 q3V0b9Xy"

- status letter: `STATUS_LETTERS` (c created, e exists, u updated, v revoked, a absent,
  f failed, r rejected);
- results entry id: what XADD returned for the outcome's entry;
- fingerprint: the short fingerprint of the request that owns the id (`claims.fingerprint`),
  moved from the in-flight claim when the record is written; empty when no request claimed
  the id (input that could not be read, say).

Kept under 29 bytes, Redis stores the value in the key's own allocation (an embedded string):
about 120 B per request, against about 536 B for a copy of the outcome's JSON.

Reading a record costs one more round trip (XRANGE of that one entry). When the stream has
been trimmed past the entry (`GRANTS_STREAM_MAXLEN`), the record still answers "done, with this
status" (`trimmed_outcome`), which is all a redelivery needs to be acknowledged without a call.

This module owns the format. Two Lua scripts beside it write or read it in the same atomic step
as other changes, and follow `parse_pointer`: `lua/record_outcome_once.lua` (the recorder)
writes it, `lua/replay_dead_letter.lua` (`tasks.outcomes.replays`) reads its fingerprint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import redis

from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.models import Outcome, Status, utc_timestamp
from grant_worker.tasks.outcomes.streams import Entry

STATUS_LETTERS: dict[str, str] = {
    "created": "c",
    "exists": "e",
    "updated": "u",
    "revoked": "v",
    "absent": "a",
    "failed": "f",
    "rejected": "r",
}
_STATUS_OF_LETTER: dict[str, Status] = {
    letter: cast(Status, status) for status, letter in STATUS_LETTERS.items()
}


@dataclass(frozen=True)
class Pointer:
    """A parsed record: how the request ended, where its outcome is, who owns the id."""

    status: Status
    entry_id: str
    fingerprint: str


def parse_pointer(raw: str) -> Pointer:
    """A record's value; raises `ValueError` for anything that is not a record."""
    letter, entry_id, fingerprint = raw.split(" ")
    if letter not in _STATUS_OF_LETTER or "-" not in entry_id:
        raise ValueError(f"not an outcome record: {raw!r}")
    return Pointer(_STATUS_OF_LETTER[letter], entry_id, fingerprint)


def trimmed_outcome(request_id: str, pointer: Pointer) -> Outcome:
    """What a record still knows once its results entry was trimmed from the stream.

    A valid outcome with the request id and status only: no grant, error or metadata, zero
    attempts, and both timestamps set to when the outcome was recorded (the entry id's time).
    """
    millis = int(pointer.entry_id.split("-", 1)[0])
    at = utc_timestamp(datetime.fromtimestamp(millis / 1000, UTC))
    return Outcome(request_id=request_id, status=pointer.status, received_at=at, finished_at=at)


def resolve(
    client: redis.Redis, keys: Keys, records: Mapping[str, str | None]
) -> dict[str, Outcome]:
    """The outcomes of those of `records` (request id → raw record, None where absent) that
    have one: each pointer's results entry is read (`outcome_texts`), and a trimmed or
    unreadable entry answers `trimmed_outcome`. Raises `ValueError` for a value that is not a
    record."""
    pointers = {request_id: parse_pointer(raw) for request_id, raw in records.items() if raw}
    return {
        request_id: _outcome_or_trimmed(request_id, pointers[request_id], text)
        for request_id, text in outcome_texts(client, keys, pointers).items()
    }


def _outcome_or_trimmed(request_id: str, pointer: Pointer, text: str | None) -> Outcome:
    if text:
        try:
            return Outcome.model_validate_json(text)
        except ValueError:
            pass
    return trimmed_outcome(request_id, pointer)


def outcome_texts(
    client: redis.Redis, keys: Keys, pointers: Mapping[str, Pointer]
) -> dict[str, str | None]:
    """The outcome JSON of each pointer's results entry (one pipelined XRANGE per pointer);
    None where the stream no longer holds that request's entry (trimmed)."""
    if not pointers:
        return {}
    pipe = client.pipeline(transaction=False)
    for pointer in pointers.values():
        pipe.xrange(keys.results, min=pointer.entry_id, max=pointer.entry_id)
    texts: dict[str, str | None] = {}
    for request_id, entries in zip(pointers, pipe.execute(), strict=True):
        texts[request_id] = next(
            (
                fields["outcome"]
                for _entry_id, fields in cast(list[Entry], entries)
                if fields.get("request_id") == request_id and "outcome" in fields
            ),
            None,
        )
    return texts
