"""The dashboard shows revokes like creates: outcomes a real worker recorded for a batch of
revokes against the emulator over HTTP, read back through the pages."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from grant_worker.config.settings import Settings
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess
from tests.integration.conftest import make_settings, next_client_id

API = "https://api.example.com/"
WAIT_S = 30.0
BATCH = "revokes-shown"


@pytest.fixture
def worker_settings(
    emulator: Any, key_prefix: str, queue_name: str, redis_url: str, tmp_path: Path
) -> Iterator[Settings]:
    """A real worker on the dashboard's deployment (same key prefix and queue)."""
    settings = make_settings(emulator, key_prefix, queue_name, redis_url=redis_url)
    worker = WorkerProcess(settings, log_dir=tmp_path).start()
    yield settings
    worker.stop(timeout_s=10)


@pytest.fixture
def revokes(worker_settings: Settings) -> dict[str, str]:
    """A batch of two revokes that ended `revoked` and `absent`: request ids by status."""
    owner = next_client_id()
    with GrantClient(worker_settings) as client:
        created = client.submit({"grant": {"client_id": owner, "audience": API}})
        assert client.wait(created, timeout_s=WAIT_S).status == "created"
        ids = client.submit_many([
            {"action": "revoke", "request_id": f"rv-{owner}", "batch_id": BATCH,
             "grant": {"client_id": owner, "audience": API}},
            {"action": "revoke", "request_id": f"ab-{owner}", "batch_id": BATCH,
             "grant_id": "cgr_neverexisted0002"},
        ])  # fmt: skip
        statuses = {o.request_id: o.status for o in client.wait_many(ids, timeout_s=WAIT_S)}
    assert statuses == {ids[0]: "revoked", ids[1]: "absent"}
    return {"revoked": ids[0], "absent": ids[1]}


def test_overview_counts_revoked_and_absent_outcomes(
    revokes: dict[str, str], browse: Callable[..., TestClient]
) -> None:
    # A worker writes its outcome counts from memory every half second.
    deadline = time.monotonic() + 10
    text = browse().get("/").text
    counted = ("revoked: 1 in 15 min", "absent: 1 in 15 min")
    while not all(count in text for count in counted) and time.monotonic() < deadline:
        time.sleep(0.1)
        text = browse().get("/").text

    assert "revoked: 1 in 15 min" in text
    assert "absent: 1 in 15 min" in text
    assert re.search(r'<polyline class="series s-revoked" points="[^"]+"', text)


def test_a_batch_of_revokes_is_complete_with_each_row_in_its_state(
    revokes: dict[str, str], browse: Callable[..., TestClient]
) -> None:
    client = browse()

    listing = client.get("/batches").text
    page = client.get(f"/batches/{BATCH}").text

    # Both count as done: the batch is complete, nothing pending.
    assert f'data-batch="{BATCH}">100 %' in listing
    assert "2 / 2" in listing
    header = re.search(r"<thead><tr>(.*?)</tr></thead>", listing, re.S)
    row = re.search(rf'<tr>\s*<td><a href="/batches/{BATCH}">.*?</tr>', listing, re.S)
    assert header is not None and row is not None
    columns = re.findall(r"<th>(.*?)</th>", header[1])
    cells = re.findall(r'<td class="num">(.*?)</td>', row[0])
    counts = dict(zip(columns[2:], cells, strict=False))
    assert (counts["revoked"], counts["absent"], counts["pending"]) == ("1", "1", "0")

    assert "<li>revoked 1</li>" in page and "<li>absent 1</li>" in page
    assert "<li>pending 0</li>" in page
    for status, request_id in revokes.items():
        assert re.search(
            rf'<tr class="row-{status}">\s*<td><a href="/search\?request_id={request_id}">'
            rf"{request_id}</a></td>\s*<td>{status}",
            page,
        ), f"no {status} row for {request_id}"


def test_search_finds_a_revokes_outcome_by_request_id(
    revokes: dict[str, str], browse: Callable[..., TestClient]
) -> None:
    client = browse()

    revoked = client.get("/search", params={"request_id": revokes["revoked"]}).text
    absent = client.get("/search", params={"request_id": revokes["absent"]}).text

    assert 'id="outcome-status">revoked' in revoked
    # The record is shown as HTML-escaped JSON text; what a person reads is the JSON.
    assert f'"batch_id": "{BATCH}"' in html.unescape(revoked)
    assert 'id="outcome-status">absent' in absent
    # The history lists the outcome from the results stream, not only the record.
    assert "<td>results</td><td>absent</td>" in absent
