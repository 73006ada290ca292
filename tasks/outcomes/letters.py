"""The one decoder of results and dead-letter stream entries, for every reader.

The recorder writes each entry; anyone else with access to Redis can write one too, and an
entry whose JSON is missing, not JSON, not an object or of the wrong shape must not stop a page
or a command that lists hundreds. Each entry decodes to a value that says why it is unreadable
(`unreadable`), so that readers show or skip it in one line and go on with the next.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from grant_worker.tasks.messages.models import Outcome

# The field of each stream that holds the JSON.
OUTCOME_FIELD = "outcome"
DEAD_FIELD = "dead"


def json_object(raw: Any) -> tuple[dict[str, Any], str | None]:
    """`raw` decoded as a JSON object, and None; else {} and why it is not one."""
    if raw is None:
        return {}, "no JSON in the entry"
    try:
        value = json.loads(raw) if isinstance(raw, str | bytes) else raw
    except ValueError:
        return {}, "not JSON"
    if not isinstance(value, dict):
        return {}, f"JSON {type(value).__name__}, not an object"
    return value, None


_DECODER = json.JSONDecoder()


def head_object(head: str, size: int) -> tuple[dict[str, Any], str | None]:
    """The JSON object whose first bytes are `head` (of `size` in all): decoded whole when
    `head` is all of it; else its top-level fields that end within `head`, so that a page
    shows a huge entry's id, status and error without ever reading it whole."""
    if len(head.encode()) >= size:
        return json_object(head)
    at = _skip(head, 0)
    if head[at : at + 1] != "{":
        return {}, "not JSON"
    return _leading_fields(head, at)[0], None


def _leading_fields(text: str, at: int) -> tuple[dict[str, Any], bool]:
    """The fields of the object at `text[at]` that end within `text` (an object cut inside
    one of them keeps that one's own leading fields), and whether the object ended."""
    found: dict[str, Any] = {}
    at += 1
    try:
        while True:
            at = _skip(text, at)
            if text[at : at + 1] == "}":
                return found, True
            name, at = _DECODER.raw_decode(text, at)
            at = _skip(text, at)
            if text[at : at + 1] != ":":
                return found, False
            at = _skip(text, at + 1)
            try:
                value, at = _DECODER.raw_decode(text, at)
            except ValueError:
                if text[at : at + 1] == "{":
                    found[str(name)] = _leading_fields(text, at)[0]
                return found, False
            found[str(name)] = value
            at = _skip(text, at)
            if text[at : at + 1] != ",":
                return found, text[at : at + 1] == "}"
            at += 1
    except ValueError:
        return found, False  # the text ends inside a name: the fields before it are all


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class DeadLetter:
    """One dead-letter entry. `letter` is {} and `unreadable` says why when its JSON cannot be
    read; the properties are None (or "") for a field missing or of the wrong type."""

    entry_id: str
    letter: dict[str, Any]
    # The request id the stream entry is listed under (its own field), when it has one.
    listed_id: str | None = None
    unreadable: str | None = field(default=None, compare=False)
    # The size of the whole letter's JSON when `letter` holds only its first fields (a page
    # reads the head of a huge letter, `windows.OutcomeWindows.matching`); None when whole.
    cut_from: int | None = field(default=None, compare=False)

    @property
    def request_id(self) -> str:
        return _text(self.letter.get("request_id")) or self.listed_id or ""

    @property
    def batch_id(self) -> str | None:
        return _text(self.letter.get("batch_id"))

    @property
    def error(self) -> dict[str, Any]:
        error = self.letter.get("error")
        return error if isinstance(error, dict) else {}

    @property
    def code(self) -> str | None:
        return _text(self.error.get("code"))

    @property
    def message(self) -> str | None:
        return _text(self.error.get("message"))

    def summary(self) -> dict[str, Any]:
        # The keys of the other commands' JSON (bulk report, results): one vocabulary.
        summary = {
            "entry_id": self.entry_id,
            "request_id": self.request_id,
            "batch_id": self.batch_id,
            "status": self.letter.get("status"),
            "error_code": self.code,
            "error_message": self.message,
            "attempts": self.letter.get("attempts"),
            "finished_at": self.letter.get("finished_at"),
        }
        request = self.letter.get("request")
        # A replay of a revoke deletes a grant: the list must tell it from a create's letter
        # without a `show` of each. Marked as the bulk report marks revoke rows.
        if isinstance(request, dict) and request.get("action") == "revoke":
            summary.update(action="revoke", grant_id=request.get("grant_id"))
        if self.unreadable:
            summary["unreadable"] = self.unreadable
        return summary


def dead_letter(entry_id: str, fields: dict[str, str]) -> DeadLetter:
    """The dead letter of a stream entry, readable or not."""
    letter, why = json_object(fields.get(DEAD_FIELD))
    return _letter(entry_id, letter, fields.get("request_id"), why, None)


def dead_letter_head(entry_id: str, listed_id: str, head: str, size: int) -> DeadLetter:
    """The dead letter of an entry of which a window read `head`, the first bytes of `size`."""
    letter, why = head_object(head, size) if size else ({}, "no JSON in the entry")
    cut = size if len(head.encode()) < size else None
    return _letter(entry_id, letter, listed_id or None, why, cut)


def _letter(
    entry_id: str, letter: dict[str, Any], listed: str | None, why: str | None, cut: int | None
) -> DeadLetter:
    if why is None and letter.get("request_id") is not None and not _text(letter["request_id"]):
        why = "its request_id is not text"
    return DeadLetter(entry_id, letter, listed, unreadable=why, cut_from=cut)


def outcome_entry(fields: dict[str, str]) -> tuple[Outcome | None, str | None]:
    """The outcome of a results entry, and None; else None and why it cannot be read."""
    raw = fields.get(OUTCOME_FIELD)
    if raw is None:
        return None, "no outcome in the entry"
    try:
        return Outcome.model_validate_json(raw), None
    except ValidationError as exc:
        return None, f"not an outcome ({exc.error_count()} problems)"


def outcome_problem(outcome: dict[str, Any]) -> str | None:
    """Why an outcome's decoded JSON is not an outcome, or None when it is one."""
    try:
        Outcome.model_validate(outcome)
    except ValidationError as exc:
        return f"not an outcome ({exc.error_count()} problems)"
    return None
