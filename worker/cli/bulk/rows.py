"""Reading bulk files (JSON lines or CSV) into validated requests, every row checked first.

Rerunning a file must resume it, so nothing about a row is random: the batch id derives from
the file's bytes (unless given), and a row without a request id gets one derived from its batch
and its normalised content. Two rows that normalise alike are one request: the second is
flagged as a duplicate of the first and sent once.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from grant_worker.tasks.errors import RequestInvalid
from grant_worker.tasks.messages.decoding import decode_json
from grant_worker.tasks.messages.limits import MAX_MESSAGE_BYTES
from grant_worker.tasks.messages.models import GrantRequest, is_request_id
from grant_worker.tasks.messages.validation import parse_request

Format = Literal["jsonl", "csv"]

# CSV columns: the grant's fields, lists, booleans, and the envelope's own fields.
GRANT_COLUMNS = (
    "client_id",
    "default_for",
    "audience",
    "organization_usage",
    "subject_type",
)
LIST_COLUMNS = ("scope", "authorization_details_types")
BOOL_COLUMNS = ("allow_any_organization", "allow_all_scopes")
ENVELOPE_COLUMNS = ("request_id", "action", "grant_id", "on_conflict", "batch_id")
JSON_COLUMNS = ("metadata",)

# Scope lists are written either way by people: "read:a write:a" and "read:a,write:a".
_LIST_SEPARATORS = re.compile(r"[\s,]+")
# Derived request ids keep the batch id readable when it fits the request-id rule.
_MAX_READABLE_BATCH = 100


@dataclass(frozen=True)
class RowProblem:
    line: int
    problems: list[str]
    raw: Any = None

    def identity(self) -> dict[str, str]:
        """The row's client, audience and ids as read, where they are text: an invalid row
        stays recognisable in a plan and a report."""
        raw: dict[str, Any] = self.raw if isinstance(self.raw, dict) else {}
        nested = raw.get("grant")
        grant: dict[str, Any] = nested if isinstance(nested, dict) else raw
        found = {name: grant.get(name) for name in ("client_id", "default_for", "audience")}
        found.update({name: raw.get(name) for name in ("request_id", "batch_id", "grant_id")})
        return {name: value for name, value in found.items() if isinstance(value, str) and value}


@dataclass(frozen=True)
class Row:
    """A valid row, with its request id and batch settled."""

    line: int
    request: GrantRequest

    @property
    def request_id(self) -> str:
        assert self.request.request_id is not None
        return self.request.request_id


@dataclass(frozen=True)
class Duplicate:
    """A row that normalises to the same request as an earlier one: sent once, as `first`."""

    line: int
    first: Row


@dataclass
class Checked:
    """A whole file, checked: the requests to send, the duplicates, the invalid rows."""

    batch_id: str
    rows: list[Row] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    invalid: list[RowProblem] = field(default_factory=list)


def guess_format(path: Path) -> Format:
    return "csv" if path.suffix.lower() in (".csv", ".tsv") else "jsonl"


KNOWN_COLUMNS = (*GRANT_COLUMNS, *LIST_COLUMNS, *BOOL_COLUMNS, *ENVELOPE_COLUMNS, *JSON_COLUMNS)
# Delimiters a spreadsheet writes, depending on its locale: `;` where `,` is the decimal mark.
_DELIMITERS = (",", ";", "\t", "|")


def split_list(value: str) -> list[str]:
    """A list cell or flag value: items separated by white space and/or commas."""
    return [item for item in _LIST_SEPARATORS.split(value) if item]


def derive_batch_id(content: bytes) -> str:
    """The batch id of a file: the same bytes, the same batch (so a rerun resumes it)."""
    return f"b-{hashlib.sha256(content).hexdigest()[:16]}"


def normalised(request: GrantRequest) -> str:
    """What makes two rows the same request: the grant with its lists as sorted sets, the
    conflict mode (a revoke: its action and grant id) and the metadata; not the ids."""
    grant = request.grant.body() if request.grant is not None else None
    for name in ("scope", "authorization_details_types"):
        if grant is not None and name in grant:
            grant[name] = sorted(set(grant[name]))
    content: dict[str, Any] = {"grant": grant, "metadata": request.metadata}
    if request.action == "revoke":
        content.update(action="revoke", grant_id=request.grant_id)
    else:
        content["on_conflict"] = request.on_conflict
    return json.dumps(content, sort_keys=True, separators=(",", ":"))


def derive_request_id(batch_id: str, content: str) -> str:
    """The request id of a row without one, from its batch and its normalised content."""
    digest = hashlib.sha256(f"{batch_id}\n{content}".encode()).hexdigest()
    if len(batch_id) <= _MAX_READABLE_BATCH and is_request_id(batch_id):
        return f"{batch_id}.{digest[:24]}"
    return f"bulk.{digest[:40]}"


def check_file(path: Path, fmt: Format, *, batch_id: str | None) -> Checked:
    """Every row of `path` checked; `batch_id` (else the file's derived one) fills the batch of
    rows that name none.

    Two rows with the same request id but different requests are a problem: the second would
    be taken for a redelivery of the first.
    """
    data = path.read_bytes()
    checked = Checked(batch_id=batch_id or derive_batch_id(data))
    by_content: dict[str, Row] = {}
    by_id: dict[str, Row] = {}
    for line, raw in _rows(data, fmt):
        if isinstance(raw, RowProblem):
            checked.invalid.append(raw)
            continue
        if isinstance(raw, dict) and "batch_id" not in raw:
            raw = {**raw, "batch_id": checked.batch_id}
        try:
            request = parse_request(raw)
        except RequestInvalid as exc:
            checked.invalid.append(RowProblem(line, exc.problems, raw))
            continue
        content = normalised(request)
        first = by_content.get(content)
        if first is not None and request.request_id in (None, first.request_id):
            checked.duplicates.append(Duplicate(line, first))
            continue
        if request.request_id is None:
            assert request.batch_id is not None
            request_id = derive_request_id(request.batch_id, content)
            request = request.model_copy(update={"request_id": request_id})
        row = Row(line, request)
        earlier = by_id.get(row.request_id)
        if earlier is not None:
            repeat = f"request_id: {row.request_id!r} repeats line {earlier.line}"
            checked.invalid.append(RowProblem(line, [repeat], raw))
            continue
        if first is not None:
            checked.duplicates.append(Duplicate(line, first))
            continue
        by_content[content] = by_id[row.request_id] = row
        checked.rows.append(row)
    return checked


def _rows(data: bytes, fmt: Format) -> Iterator[tuple[int, Any]]:
    # utf-8-sig: a byte-order mark (Excel writes one) is not part of the first column's name.
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        yield 1, RowProblem(1, [f"file: not valid UTF-8 ({exc.reason} at byte {exc.start})"])
        return
    if fmt == "jsonl":
        yield from _jsonl_rows(text)
        return
    yield from _csv_rows(text)


def _jsonl_rows(text: str) -> Iterator[tuple[int, Any]]:
    first = True
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(line.encode("utf-8")) > MAX_MESSAGE_BYTES:
            too_long = f"request: at most {MAX_MESSAGE_BYTES} bytes; not read"
            yield line_no, RowProblem(line_no, [too_long])
            first = False
            continue
        try:
            # Bounded in size and depth, as every door of the worker is.
            yield line_no, decode_json(line, what="request")
        except RequestInvalid as exc:
            problems = list(exc.problems)
            if first and _looks_like_a_csv_header(line):
                problems.append(
                    "file: read as JSON lines, but its first line looks like a CSV header; "
                    "pass --format csv"
                )
            yield line_no, RowProblem(line_no, problems, line)
        first = False


def _looks_like_a_csv_header(line: str) -> bool:
    cells = {cell.strip().strip('"').lower() for cell in re.split(r"[,;\t|]", line)}
    return "audience" in cells or len(cells & set(KNOWN_COLUMNS)) >= 2


def _delimiter(header: str) -> str:
    """The delimiter the header line uses most (`,` when it uses none)."""
    counts = {delimiter: header.count(delimiter) for delimiter in _DELIMITERS}
    best = max(counts, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


def _column_problem(unknown: list[str]) -> str:
    hints = []
    for name in unknown:
        guess = difflib.get_close_matches(name, KNOWN_COLUMNS, n=1, cutoff=0.6)
        hints.append(f"{name!r} (did you mean {guess[0]!r}?)" if guess else repr(name))
    return (
        f"header: unknown column{'s' if len(unknown) > 1 else ''} {', '.join(hints)}; "
        f"the columns are {', '.join(KNOWN_COLUMNS)}"
    )


def _csv_rows(text: str) -> Iterator[tuple[int, Any]]:
    lines = text.splitlines(keepends=True)
    if not lines:
        return
    delimiter = _delimiter(lines[0])
    header = next(csv.reader(lines[:1], delimiter=delimiter), [])
    # Column names are matched as people write them: `Client_ID`, ` audience `.
    names = [name.strip().lower() for name in header]
    unknown = [name for name in names if name not in KNOWN_COLUMNS]
    if unknown:
        yield 1, RowProblem(1, [_column_problem(unknown)])
        return
    reader = csv.DictReader(lines[1:], fieldnames=names, delimiter=delimiter)
    for row in reader:
        line = reader.line_num + 1  # the header was read apart
        converted = csv_row_to_request(row)
        if isinstance(converted, RowProblem):
            converted = RowProblem(line, converted.problems, row)
        yield line, converted


def csv_row_to_request(row: dict[str | None, Any]) -> dict[str, Any] | RowProblem:
    """One CSV row as a request envelope; empty cells are fields left out."""
    grant: dict[str, Any] = {}
    envelope: dict[str, Any] = {}
    for column, value in row.items():
        if column is None:  # csv.DictReader's key for the cells past the header's
            return RowProblem(
                0, ["row: more cells than the header has columns (quote a cell that holds the "
                    "delimiter)"],
            )  # fmt: skip
        if value is None or value.strip() == "":
            continue
        value = value.strip()
        if column in GRANT_COLUMNS:
            grant[column] = value
        elif column in LIST_COLUMNS:
            grant[column] = split_list(value)
        elif column in BOOL_COLUMNS:
            if value.lower() not in ("true", "false"):
                return RowProblem(0, [f"grant.{column}: must be true or false"])
            grant[column] = value.lower() == "true"
        elif column in JSON_COLUMNS:
            try:
                envelope[column] = json.loads(value)
            except json.JSONDecodeError as exc:
                return RowProblem(0, [f"{column}: not valid JSON ({exc.msg})"])
        elif column in ENVELOPE_COLUMNS:
            envelope[column] = value
    if not grant and "grant_id" in envelope:
        # A revoke by id in a file whose other rows name grants: its grant cells are empty.
        return envelope
    return {**envelope, "grant": grant}
