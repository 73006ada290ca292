"""The outcome record's pointer format, read without Redis."""

from __future__ import annotations

import pytest

from grant_worker.tasks.outcomes.records import Pointer, parse_pointer, trimmed_outcome


def test_a_pointer_says_how_the_request_ended_where_its_outcome_is_and_who_owns_the_id() -> None:
    assert parse_pointer("f 1764224961234-7 q3V0b9Xy") == Pointer(
        "failed", "1764224961234-7", "q3V0b9Xy"
    )
    assert parse_pointer("r 1764224961234-0 ") == Pointer("rejected", "1764224961234-0", "")


@pytest.mark.parametrize(
    "raw", ["", "x 1-0 ab", "c 17642 ab", "c 1-0", "c 1-0 a b", '{"request_id": "r-1"}']
)
def test_anything_else_is_not_a_record(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_pointer(raw)


def test_a_trimmed_entry_leaves_the_request_id_the_status_and_when_it_was_recorded() -> None:
    trimmed = trimmed_outcome("r-1", Pointer("exists", "1795759200123-4", "q3V0b9Xy"))
    assert (trimmed.request_id, trimmed.status, trimmed.grant, trimmed.error) == (
        "r-1", "exists", None, None,
    )  # fmt: skip
    assert trimmed.finished_at == trimmed.received_at == "2026-11-27T06:00:00.123Z"
