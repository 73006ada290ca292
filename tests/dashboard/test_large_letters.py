"""Pages stay small and the scripts behind them short when entries are large: long fields are
cut on the list, the whole letter is one page of its own."""

from __future__ import annotations

import json
from collections.abc import Callable

import redis
from starlette.testclient import TestClient

from grant_worker.tasks.keys import Keys
from grant_worker.tasks.outcomes.windows import BUDGET_BYTES, HEAD_BYTES, OutcomeWindows

LETTERS = 104
HALF = 29 * 1024  # two fields of this: letters of about 58 KB


def plant_large_letters(client: redis.Redis, keys: Keys) -> list[str]:
    ids = []
    for n in range(LETTERS):
        rid = f"big-{n:04d}"
        letter = {
            "request_id": rid,
            "batch_id": "batch-big",
            "status": "failed",
            "error": {"code": "not_found", "message": "m" * 1000, "details": {"a": "d" * HALF}},
            "attempts": 3,
            "finished_at": "2026-11-27T03:00:01.000Z",
            "request": {"request_id": rid, "grant": {"audience": "r" * HALF}},
        }
        dead = json.dumps(letter, separators=(",", ":"))
        ids.append(client.xadd(keys.dead, {"request_id": rid, "status": "failed", "dead": dead}))
    return ids


def test_the_dead_letter_list_is_bounded_by_bytes_and_links_each_whole_letter(
    browse: Callable[..., TestClient], redis_client: redis.Redis, key_prefix: str
) -> None:
    ids = plant_large_letters(redis_client, Keys(key_prefix))
    client = browse()

    listing = client.get("/dead")
    whole = client.get(f"/dead/{ids[-1]}")

    assert listing.status_code == 200
    # 104 letters of 58 KB were a 6.1 MB page; the fields a row shows are cut.
    assert len(listing.content) < 300_000, len(listing.content)
    assert "big-0103" in listing.text
    assert "m" * 300 + "… (700 more characters)" in listing.text
    assert "whole letter (" in listing.text
    assert f'href="/dead/{ids[-1]}"' in listing.text
    assert whole.status_code == 200
    assert "r" * HALF in whole.text and "d" * HALF in whole.text
    assert client.get("/dead/1-1").status_code == 404


def test_the_matching_script_reads_and_answers_bounded_bytes(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    plant_large_letters(redis_client, keys)

    found = OutcomeWindows(redis_client, keys).matching(keys.dead, window=500, field_name="dead")

    # It stops once it has looked at its byte budget, not at the window's 500 entries...
    assert found.read < LETTERS
    assert found.read <= BUDGET_BYTES // (2 * HALF) + 10
    # ...and hands back the head of each, never a whole 58 KB letter.
    assert all(len(entry.head) <= HEAD_BYTES for entry in found.entries)
    assert found.codes == ["not_found"] and found.batches == ["batch-big"]
