"""Bulk files are read row by row, every row is checked before anything is enqueued, and the
ids of a file's rows follow from its content, so that rerunning it resumes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grant_worker.tasks.errors import RequestInvalid
from grant_worker.tasks.messages.validation import parse_request
from grant_worker.worker.cli.bulk.rows import (
    check_file,
    csv_row_to_request,
    derive_batch_id,
    split_list,
)


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_a_csv_row_becomes_an_envelope_with_lists_and_booleans() -> None:
    row = {
        "request_id": "r-1",
        "client_id": "svc-1",
        "audience": "https://api/",
        "scope": "read:a  write:a",
        "allow_any_organization": "TRUE",
        "default_for": "",
        "metadata": '{"ticket": "ONB-1"}',
    }
    assert csv_row_to_request(row) == {
        "request_id": "r-1",
        "metadata": {"ticket": "ONB-1"},
        "grant": {
            "client_id": "svc-1",
            "audience": "https://api/",
            "scope": ["read:a", "write:a"],
            "allow_any_organization": True,
        },
    }


def test_scope_lists_split_on_white_space_and_commas_alike() -> None:
    assert split_list("read:a,write:a  export:a ,\tdelete:a") == [
        "read:a",
        "write:a",
        "export:a",
        "delete:a",
    ]


def test_a_utf8_byte_order_mark_before_the_header_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "g.csv", "\ufeffclient_id,audience\nsvc-1,https://api/\n".encode())
    checked = check_file(path, "csv", batch_id=None)
    assert checked.invalid == []
    assert checked.rows[0].request.grant.client_id == "svc-1"


def test_a_bad_boolean_cell_is_a_problem_of_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "g.csv", "client_id,audience,allow_all_scopes\nsvc-1,https://api/,yes\n")
    checked = check_file(path, "csv", batch_id=None)
    assert checked.rows == []
    assert checked.invalid[0].line == 2
    assert "allow_all_scopes" in checked.invalid[0].problems[0]


def test_unknown_csv_columns_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "g.csv", "client,audience\nsvc-1,https://api/\n")
    checked = check_file(path, "csv", batch_id=None)
    (problem,) = checked.invalid[0].problems
    assert "unknown column 'client' (did you mean 'client_id'?)" in problem
    assert "the columns are client_id, default_for, audience" in problem


def test_jsonl_rows_get_the_batch_id_unless_they_name_one(tmp_path: Path) -> None:
    rows = [
        {"grant": {"client_id": "a", "audience": "x"}},
        {"grant": {"client_id": "b", "audience": "x"}, "batch_id": "own"},
    ]
    path = write(tmp_path, "g.jsonl", "\n".join(json.dumps(row) for row in rows) + "\n\n")
    checked = check_file(path, "jsonl", batch_id="b-1")
    assert checked.invalid == []
    assert [row.request.batch_id for row in checked.rows] == ["b-1", "own"]


def test_every_bad_row_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "g.jsonl",
        '{"grant": {"client_id": "a", "audience": "x"}}\nnot json\n{"grant": {"audience": "x"}}\n',
    )
    checked = check_file(path, "jsonl", batch_id=None)
    assert len(checked.rows) == 1
    assert [problem.line for problem in checked.invalid] == [2, 3]


def test_one_request_id_for_two_different_requests_is_a_problem(tmp_path: Path) -> None:
    rows = [
        {"request_id": "same", "grant": {"client_id": "a", "audience": "x"}},
        {"request_id": "same", "grant": {"client_id": "b", "audience": "x"}},
    ]
    path = write(tmp_path, "g.jsonl", "\n".join(json.dumps(row) for row in rows))
    checked = check_file(path, "jsonl", batch_id=None)
    assert checked.invalid[0].line == 2
    assert "repeats line 1" in checked.invalid[0].problems[0]


def test_the_batch_and_request_ids_follow_from_the_content(tmp_path: Path) -> None:
    text = "client_id,audience,scope\nsvc-1,https://api/,read:a write:a\nsvc-2,https://api/,\n"
    first = check_file(write(tmp_path, "a.csv", text), "csv", batch_id=None)
    again = check_file(write(tmp_path, "b.csv", text), "csv", batch_id=None)
    other = check_file(
        write(tmp_path, "c.csv", text + "svc-3,https://api/,\n"), "csv", batch_id=None
    )
    assert first.batch_id == again.batch_id == derive_batch_id(text.encode())
    assert [r.request_id for r in first.rows] == [r.request_id for r in again.rows]
    assert other.batch_id != first.batch_id
    assert {r.request_id for r in other.rows}.isdisjoint(r.request_id for r in first.rows)
    assert first.rows[0].request_id.startswith(f"{first.batch_id}.")


def test_an_explicit_batch_id_keeps_the_request_ids_across_edits(tmp_path: Path) -> None:
    row = "svc-1,https://api/,read:a\n"
    before = check_file(
        write(tmp_path, "a.csv", "client_id,audience,scope\n" + row), "csv", batch_id="B"
    )
    after = check_file(
        write(tmp_path, "b.csv", "client_id,audience,scope\nsvc-9,https://api/,\n" + row),
        "csv",
        batch_id="B",
    )
    assert before.rows[0].request_id == after.rows[1].request_id


def test_rows_alike_after_normalisation_are_one_request_flagged_with_both_lines(
    tmp_path: Path,
) -> None:
    text = (
        "client_id,audience,scope\n"
        "svc-1,https://api/,read:a write:a\n"
        "svc-2,https://api/,read:a\n"
        'svc-1,https://api/,"write:a,read:a,read:a"\n'
    )
    checked = check_file(write(tmp_path, "g.csv", text), "csv", batch_id=None)
    assert [row.line for row in checked.rows] == [2, 3]
    (duplicate,) = checked.duplicates
    assert (duplicate.line, duplicate.first.line) == (4, 2)
    assert checked.invalid == []


@pytest.mark.parametrize("scope", ["read:a write:a", "read:a\twrite:a", " read:a"])
def test_a_scope_item_with_white_space_is_invalid_in_any_request(scope: str) -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse_request({"grant": {"client_id": "a", "audience": "x", "scope": [scope]}})
    assert caught.value.problems == [
        "grant.scope[0]: must not contain white space (one scope per item)"
    ]


def test_a_jsonl_scope_item_with_white_space_is_an_invalid_row(tmp_path: Path) -> None:
    row = {"grant": {"client_id": "a", "audience": "x", "scope": ["read:a write:a"]}}
    checked = check_file(write(tmp_path, "g.jsonl", json.dumps(row)), "jsonl", batch_id=None)
    assert checked.rows == []
    assert "grant.scope[0]: must not contain white space" in checked.invalid[0].problems[0]
