"""Producer text on the dashboard: control and bidi characters are made visible, never sent
as they are (HTML escaping leaves them alone)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.testclient import TestClient

from tests.dashboard.conftest import grant_request

FORGERIES = ("\x1b", "\x9b", "\x85", "\u202e", "\u2067")


def test_pages_show_control_and_bidi_characters_as_escapes(
    browse: Callable[..., TestClient], record: Callable[..., Any]
) -> None:
    batch = "b\u202eexe.txt\x9b"
    original = grant_request("shown-1", "https://a/")
    original["metadata"] = {"note": "x\x1b]0;title\x07\u2067y\x85"}
    record("shown-1", "failed", batch_id=batch, code="bad_request", original=original)
    client = browse()
    for path in ("/dead", "/search?request_id=shown-1", "/batches", "/"):
        page = client.get(path)
        assert page.status_code == 200, path
        for char in FORGERIES:
            assert char not in page.text, (path, char)
    assert "b\\u202eexe.txt\\x9b" in client.get("/dead").text
