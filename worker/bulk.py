"""Reading bulk files (JSON lines or CSV) into validated requests, every row checked first."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from grant_worker.tasks.errors import RequestInvalid
from grant_worker.tasks.messages.decoding import decode_json
from grant_worker.tasks.messages.limits import MAX_MESSAGE_BYTES
from grant_worker.tasks.messages.models import GrantRequest
from grant_worker.tasks.messages.validation import parse_request

Format = Literal["jsonl", "csv"]

# CSV columns: the grant's fields, space-separated lists, and the envelope's own fields.
GRANT_COLUMNS = (
    "client_id",
    "default_for",
    "audience",
    "organization_usage",
    "subject_type",
)
LIST_COLUMNS = ("scope", "authorization_details_types")
BOOL_COLUMNS = ("allow_any_organization", "allow_all_scopes")
ENVELOPE_COLUMNS = ("request_id", "on_conflict", "batch_id")


@dataclass(frozen=True)
class RowProblem:
    line: int
    problems: list[str]


def guess_format(path: Path) -> Format:
    return "csv" if path.suffix.lower() == ".csv" else "jsonl"


def read_requests(
    path: Path, fmt: Format, *, batch_id: str | None
) -> tuple[list[GrantRequest], list[RowProblem]]:
    """Every row of `path` as a request, or the problems of each row that is not one.

    `batch_id` fills the batch of rows that name none. Duplicate request ids are problems too:
    the second row would be taken for a redelivery of the first.
    """
    requests: list[GrantRequest] = []
    problems: list[RowProblem] = []
    seen: dict[str, int] = {}
    for line, raw in _rows(path, fmt):
        if isinstance(raw, RowProblem):
            problems.append(raw)
            continue
        if batch_id is not None and isinstance(raw, dict) and "batch_id" not in raw:
            raw = {**raw, "batch_id": batch_id}
        try:
            request = parse_request(raw)
        except RequestInvalid as exc:
            problems.append(RowProblem(line, exc.problems))
            continue
        if request.request_id is not None:
            first = seen.setdefault(request.request_id, line)
            if first != line:
                repeat = f"request_id: {request.request_id!r} repeats line {first}"
                problems.append(RowProblem(line, [repeat]))
                continue
        requests.append(request)
    return requests, problems


def _rows(path: Path, fmt: Format) -> Iterator[tuple[int, Any]]:
    with path.open(encoding="utf-8", newline="") as handle:
        if fmt == "jsonl":
            for line_no, line in enumerate(_bounded_lines(handle), start=1):
                if line is None:
                    too_long = f"request: at most {MAX_MESSAGE_BYTES} bytes; not read"
                    yield line_no, RowProblem(line_no, [too_long])
                    continue
                if not line.strip():
                    continue
                try:
                    # Bounded in size and depth, as every door of the worker is.
                    yield line_no, decode_json(line, what="request")
                except RequestInvalid as exc:
                    yield line_no, RowProblem(line_no, exc.problems)
            return
        reader = csv.DictReader(handle)
        unknown = set(reader.fieldnames or ()) - {
            *GRANT_COLUMNS,
            *LIST_COLUMNS,
            *BOOL_COLUMNS,
            *ENVELOPE_COLUMNS,
        }
        if unknown:
            yield 1, RowProblem(1, [f"header: unknown columns {sorted(unknown)}"])
            return
        for row in reader:
            converted = csv_row_to_request(row)
            if isinstance(converted, RowProblem):
                converted = RowProblem(reader.line_num, converted.problems)
            yield reader.line_num, converted


def _bounded_lines(handle: Any) -> Iterator[str | None]:
    """The file's lines, never more than one request's worth in memory: a longer line is
    skipped to its end and yielded as None."""
    while True:
        line = handle.readline(MAX_MESSAGE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_MESSAGE_BYTES and not line.endswith("\n"):
            while (rest := handle.readline(MAX_MESSAGE_BYTES)) and not rest.endswith("\n"):
                pass
            yield None
            continue
        yield line


def csv_row_to_request(row: dict[str, str | None]) -> dict[str, Any] | RowProblem:
    """One CSV row as a request envelope; empty cells are fields left out."""
    grant: dict[str, Any] = {}
    envelope: dict[str, Any] = {}
    for column, value in row.items():
        if value is None or value.strip() == "":
            continue
        value = value.strip()
        if column in GRANT_COLUMNS:
            grant[column] = value
        elif column in LIST_COLUMNS:
            grant[column] = value.split()
        elif column in BOOL_COLUMNS:
            if value.lower() not in ("true", "false"):
                return RowProblem(0, [f"grant.{column}: must be true or false"])
            grant[column] = value.lower() == "true"
        elif column in ENVELOPE_COLUMNS:
            envelope[column] = value
    return {**envelope, "grant": grant}
