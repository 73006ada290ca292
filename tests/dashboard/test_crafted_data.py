"""Malformed values in Redis never take a page down: each is shown as unreadable or left out,
and the readable entries beside it are still shown."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from starlette.testclient import TestClient

from grant_worker.tasks.keys import Keys
from tests.crafted_data import GOOD_BATCH, GOOD_DEAD, GOOD_RESULT, JUNK_BATCH, plant

HTMX = {"HX-Request": "true"}


@pytest.fixture
def planted(redis_client: redis.Redis, key_prefix: str, queue_name: str) -> None:
    plant(redis_client, Keys(key_prefix), queue_name)


PAGES = [
    ("/", ["celery@good"]),
    ("/batches", [GOOD_BATCH, JUNK_BATCH]),
    (f"/batches/{GOOD_BATCH}", [GOOD_BATCH]),
    (f"/batches/{JUNK_BATCH}", [JUNK_BATCH]),
    ("/dead", [GOOD_DEAD, "dead-not-json", "unreadable"]),
    ("/dead?code=not_found", [GOOD_DEAD]),
    (f"/dead?batch={GOOD_BATCH}", [GOOD_DEAD]),
    (f"/search?request_id={GOOD_RESULT}", ["<td>created</td>"]),
    (f"/search?request_id={GOOD_DEAD}", ["<td>not_found</td>"]),
    ("/search?request_id=not-json", ["unreadable: not JSON"]),
    ("/search?request_id=a-list", ["unreadable: JSON list, not an object"]),
    ("/search?request_id=a-number", ["unreadable: JSON int, not an object"]),
    ("/search?request_id=no-outcome-field", ["unreadable: no outcome in the entry"]),
    ("/search?request_id=wrong-types", ["unreadable: not an outcome"]),
    ("/search?request_id=dead-types", ["unreadable: its request_id is not text"]),
    ("/search?request_id=dead-not-json", ["unreadable: not JSON"]),
    ("/search?request_id=dead-error-types", ["dead letters"]),
]
# Every page polls a fragment of itself (htmx) but the dead-letter list.
FRAGMENTS = [(path, readable) for path, readable in PAGES if not path.startswith("/dead")]


@pytest.mark.usefixtures("planted")
@pytest.mark.parametrize(
    ("path", "readable", "fragment"),
    [(*page, False) for page in PAGES] + [(*page, True) for page in FRAGMENTS],
)
def test_every_page_answers_with_the_readable_entries_beside_malformed_ones(
    browse: Callable[..., TestClient], path: str, readable: list[str], fragment: bool
) -> None:
    page = browse().get(path, headers=HTMX if fragment else {})

    assert page.status_code == 200, page.text[-2000:]
    for text in readable:
        assert text in page.text


@pytest.mark.usefixtures("planted")
def test_a_malformed_dead_letter_can_be_selected_without_a_crash(
    browse: Callable[..., TestClient], redis_client: redis.Redis, key_prefix: str
) -> None:
    client = browse()
    listing = client.get("/dead")
    csrf = listing.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    ids = [entry_id for entry_id, _ in redis_client.xrange(Keys(key_prefix).dead)]

    page = client.post("/dead/confirm", data={"csrf": csrf, "action": "replay", "id": ids})

    assert page.status_code == 200
    assert GOOD_DEAD in page.text
