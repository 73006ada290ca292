"""Bulk files as people write them: other delimiters, any header case, a CSV named .txt, a
misspelt column; invalid rows stay recognisable in the plan and the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from grant_worker.worker.cli.bulk.plan import plan_rows
from grant_worker.worker.cli.bulk.report import report_lines
from grant_worker.worker.cli.bulk.rows import check_file, guess_format

API = "https://api.example.com/"


@pytest.mark.parametrize("delimiter", [";", "\t", ","])
def test_the_delimiter_is_sniffed_from_the_header(tmp_path: Path, delimiter: str) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(
        delimiter.join(["client_id", "audience", "scope"])
        + "\n"
        + delimiter.join(["svc-1", API, '"read:a write:a"'])
        + "\n"
    )
    checked = check_file(path, "csv", batch_id=None)
    assert checked.invalid == []
    (row,) = checked.rows
    assert row.request.grant.client_id == "svc-1"
    assert row.request.grant.audience == API


def test_header_case_and_spaces_do_not_matter(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(f"Client_ID, Audience \nsvc-1,{API}\n")
    checked = check_file(path, "csv", batch_id=None)
    assert checked.invalid == []
    assert checked.rows[0].request.grant.client_id == "svc-1"


def test_a_csv_named_txt_is_read_as_json_lines_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "rows.txt"
    path.write_text(f"client_id,audience\nsvc-1,{API}\n")
    checked = check_file(path, guess_format(path), batch_id=None)
    assert "pass --format csv" in " ".join(checked.invalid[0].problems)


def test_invalid_rows_keep_their_client_and_audience_in_plan_and_report(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(f"client_id,audience,subject_type\nsvc-1,{API},robot\nsvc-2,{API},\n")
    checked = check_file(path, "csv", batch_id=None)
    (problem,) = checked.invalid
    (planned,) = [row for row in plan_rows(checked, {API: []}) if row.action == "invalid"]
    assert (planned.client_id, planned.audience) == ("svc-1", API)
    (reported,) = [line for line in report_lines(checked, {}, set()) if line["status"] == "invalid"]
    assert (reported["client_id"], reported["audience"]) == ("svc-1", API)
    assert reported["line"] == problem.line == 2


def test_a_row_with_more_cells_than_columns_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(f"client_id,audience,scope\nsvc-1,{API},read:a,write:a\n")
    (problem,) = check_file(path, "csv", batch_id=None).invalid
    assert "more cells than the header has columns" in problem.problems[0]
