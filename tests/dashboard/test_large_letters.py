"""Pages stay small and the scripts behind them short when entries are large: long fields are
cut on the list, the whole letter is one page of its own."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable

import redis
from starlette.testclient import TestClient

from grant_worker.tasks.keys import Keys
from grant_worker.tasks.outcomes import windows
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
    # Shown whole, 104 letters of 58 KB make a 6.1 MB page: the fields a row shows are cut.
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


BATCH = "batch-big"
QUEUED = 40


def plant_large_batch(client: redis.Redis, keys: Keys, queue: str) -> None:
    """A batch of 104 failed outcomes of about 58 KB (a long message first, a huge answer
    after) and 40 queued messages of as much, with its ledger, as the recorder and the
    producer leave them."""
    for n in range(LETTERS):
        rid = f"big-{n:04d}"
        outcome = {
            "request_id": rid,
            "batch_id": BATCH,
            "status": "failed",
            "error": {"code": "not_found", "message": "m" * 2000, "details": {"a": "d" * HALF}},
            "differences": {"scope": ["s" * HALF]},
            "attempts": 3,
            "received_at": "2026-11-27T03:00:00.000Z",
            "finished_at": "2026-11-27T03:00:01.000Z",
        }
        text = json.dumps(outcome, separators=(",", ":"))
        entry = client.xadd(keys.results, {"request_id": rid, "status": "failed", "outcome": text})
        client.set(keys.outcome_record(rid), f"f {entry} fp")
        client.hset(keys.batch_rows(BATCH), rid, "failed")
    for n in range(QUEUED):
        rid = f"queued-{n:04d}"
        request = {"request_id": rid, "grant": {"audience": "r" * 2 * HALF}, "batch_id": BATCH}
        body = json.dumps([[], {"request": request}, {}]).encode()
        envelope = {
            "body": base64.b64encode(body).decode(),
            "headers": {"id": rid},
            "properties": {"body_encoding": "base64"},
        }
        client.lpush(queue, json.dumps(envelope))
        client.hset(keys.batch_rows(BATCH), rid, "queued")
    client.hset(
        keys.batch(BATCH),
        mapping={"total": LETTERS + QUEUED, "queued": QUEUED, "failed": LETTERS},
    )
    client.zadd(keys.batches, {BATCH: 1})


def test_the_batch_pages_are_bounded_by_bytes_and_say_where_a_budget_stopped_them(
    browse: Callable[..., TestClient], redis_client: redis.Redis, key_prefix: str, queue_name: str
) -> None:
    plant_large_batch(redis_client, Keys(key_prefix), queue_name)
    client = browse()

    page = client.get(f"/batches/{BATCH}")
    listing = client.get("/batches")

    assert page.status_code == 200 and listing.status_code == 200
    # Shown whole, 104 rows of a 2,000-character message make a page of more than 200 KB.
    assert len(page.content) < 120_000, len(page.content)
    assert "m" * 300 + "… (1700 more characters)" in page.text
    assert "d" * 2000 not in page.text and "s" * 2000 not in page.text
    assert re.search(r"whole outcome \(\d+ bytes\)", page.text)
    # Every row is listed; those whose details the byte budget left unread say so.
    assert "big-0000" in page.text and "big-0103" in page.text and "queued-0039" in page.text
    assert "the page&#39;s byte budget was reached" in page.text
    assert "read up to a byte budget" in page.text
    assert BATCH in listing.text


def test_the_snapshot_script_reads_and_answers_bounded_bytes(
    redis_client: redis.Redis, key_prefix: str, queue_name: str
) -> None:
    keys = Keys(key_prefix)
    plant_large_batch(redis_client, keys, queue_name)

    snap = OutcomeWindows(redis_client, keys).snapshot(
        queue_name, sample=1000, window=1000, batch_id=BATCH
    )

    # It stops once it has looked at its byte budgets, not at the windows' 1,000 entries...
    assert len(snap.recent) <= BUDGET_BYTES // (2 * HALF) + 10
    assert len(snap.queued) <= windows.MESSAGE_BUDGET_BYTES // (2 * HALF) + 10
    assert snap.outcomes_cut and snap.queue_cut and snap.window_full
    assert not snap.queue_fully_read
    # ...hands back each of the batch's outcomes as its leading fields, never whole...
    mine = [o for o in snap.recent if o.batch_id == BATCH]
    assert mine and all(o.cut_from and o.cut_from > 2 * HALF for o in mine)
    assert all(o.outcome["error"]["code"] == "not_found" for o in mine)
    assert all(len(json.dumps(o.outcome)) <= HEAD_BYTES for o in mine)
    # ...and each message's head, still telling whose it is.
    assert all(m.request_id and m.request_id.startswith("queued-") for m in snap.queued)


def test_the_confirmation_page_reads_the_selection_by_bytes_and_says_what_it_left_out(
    browse: Callable[..., TestClient], redis_client: redis.Redis, key_prefix: str
) -> None:
    ids = plant_large_letters(redis_client, Keys(key_prefix))
    client = browse()
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/dead").text)
    assert csrf is not None

    page = client.post(
        "/dead/confirm", data={"csrf": csrf.group(1), "action": "replay", "id": ids[:100]}
    )

    assert page.status_code == 200
    listed = page.text.count('type="hidden" name="id"')
    assert 0 < listed <= BUDGET_BYTES // (2 * HALF) + 1
    assert f"{100 - listed} more selected not listed, and not replayed" in page.text
