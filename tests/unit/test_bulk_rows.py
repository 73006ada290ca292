"""Bulk files are read row by row, and every row is checked before anything is enqueued."""

from __future__ import annotations

import json
from pathlib import Path

from grant_worker.worker.bulk import csv_row_to_request, read_requests


def test_a_csv_row_becomes_an_envelope_with_lists_and_booleans() -> None:
    row = {
        "request_id": "r-1",
        "client_id": "svc-1",
        "audience": "https://api/",
        "scope": "read:a  write:a",
        "allow_any_organization": "TRUE",
        "default_for": "",
    }
    assert csv_row_to_request(row) == {
        "request_id": "r-1",
        "grant": {
            "client_id": "svc-1",
            "audience": "https://api/",
            "scope": ["read:a", "write:a"],
            "allow_any_organization": True,
        },
    }


def test_a_bad_boolean_cell_is_a_problem_of_its_line(tmp_path: Path) -> None:
    path = tmp_path / "grants.csv"
    path.write_text("client_id,audience,allow_all_scopes\nsvc-1,https://api/,yes\n")
    requests, problems = read_requests(path, "csv", batch_id=None)
    assert requests == []
    assert problems[0].line == 2
    assert "allow_all_scopes" in problems[0].problems[0]


def test_unknown_csv_columns_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "grants.csv"
    path.write_text("client,audience\nsvc-1,https://api/\n")
    _, problems = read_requests(path, "csv", batch_id=None)
    assert "unknown columns ['client']" in problems[0].problems[0]


def test_jsonl_rows_get_the_batch_id_unless_they_name_one(tmp_path: Path) -> None:
    path = tmp_path / "grants.jsonl"
    rows = [
        {"grant": {"client_id": "a", "audience": "x"}},
        {"grant": {"client_id": "b", "audience": "x"}, "batch_id": "own"},
    ]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    requests, problems = read_requests(path, "jsonl", batch_id="b-1")
    assert problems == []
    assert [request.batch_id for request in requests] == ["b-1", "own"]


def test_every_bad_row_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "grants.jsonl"
    path.write_text(
        '{"grant": {"client_id": "a", "audience": "x"}}\nnot json\n{"grant": {"audience": "x"}}\n'
    )
    requests, problems = read_requests(path, "jsonl", batch_id=None)
    assert len(requests) == 1
    assert [problem.line for problem in problems] == [2, 3]


def test_a_repeated_request_id_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "grants.jsonl"
    row = {"request_id": "same", "grant": {"client_id": "a", "audience": "x"}}
    path.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    _, problems = read_requests(path, "jsonl", batch_id=None)
    assert problems[0].line == 2
    assert "repeats line 1" in problems[0].problems[0]
