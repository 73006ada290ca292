"""The consumer's inspection lets through only messages the task can read, without unpickling."""

from __future__ import annotations

import json
import pickle

from grant_worker.tasks.messages.inspection import TASK_NAME, inspect_message
from grant_worker.tasks.messages.models import MAX_MESSAGE_BYTES

KNOWN = {TASK_NAME}
HEADERS = {"task": TASK_NAME, "id": "task-1"}


def body(request: object = None, *, args: list[object] | None = None) -> str:
    kwargs = {"request": request if request is not None else {"grant": {}}}
    return json.dumps([args or [], kwargs, {"callbacks": None}])


def inspect(**overrides: object) -> object:
    message = {
        "content_type": "application/json",
        "headers": HEADERS,
        "body": body(),
        "task_names": KNOWN,
    }
    message.update(overrides)
    return inspect_message(**message)  # type: ignore[arg-type]


def test_a_well_formed_json_message_is_let_through() -> None:
    assert inspect() is None


def test_a_pickle_message_is_refused_without_being_deserialized() -> None:
    refusal = inspect(content_type="application/x-python-serialize", body=pickle.dumps({"a": 1}))
    assert refusal is not None
    assert "JSON only" in refusal.reason
    assert refusal.task_id == "task-1"


def test_an_oversize_message_is_refused_unread() -> None:
    refusal = inspect(body=body("x" * MAX_MESSAGE_BYTES))
    assert refusal is not None
    assert str(MAX_MESSAGE_BYTES) in refusal.reason


def test_an_unknown_task_name_is_refused_naming_it() -> None:
    refusal = inspect(headers={"task": "grants.delete", "id": "t"})
    assert refusal is not None
    assert "'grants.delete'" in refusal.reason


def test_a_message_without_task_headers_is_refused_as_malformed() -> None:
    refusal = inspect(headers={})
    assert refusal is not None
    assert "malformed" in refusal.reason


def test_a_body_that_is_not_json_is_refused() -> None:
    refusal = inspect(body="[[], {")
    assert refusal is not None
    assert "not valid JSON" in refusal.reason


def test_a_body_that_is_not_utf8_is_refused() -> None:
    refusal = inspect(body=b'[[], {"request": "\xff"}, {}]')
    assert refusal is not None
    assert "UTF-8" in refusal.reason


def test_positional_arguments_are_refused_keeping_the_request() -> None:
    refusal = inspect(body=body({"grant": {"audience": "a"}}, args=[1]))
    assert refusal is not None
    assert refusal.original == {"grant": {"audience": "a"}}


def test_a_body_that_is_not_a_celery_triple_is_refused() -> None:
    refusal = inspect(body=json.dumps({"request": {}}))
    assert refusal is not None
    assert "[args, kwargs, embed]" in refusal.reason


def test_a_missing_id_header_is_refused() -> None:
    refusal = inspect(headers={"task": TASK_NAME})
    assert refusal is not None
    assert refusal.task_id is None


def test_a_body_nested_1200_deep_is_refused_not_raising_recursion_error() -> None:
    deep = "[" * 1200 + "]" * 1200
    refusal = inspect(body=json.dumps([[], {"request": "x"}, {}])[:-1] + ', "d": ' + deep + "}")
    assert refusal is not None and "nested 1" in refusal.reason
    assert refusal.task_id == "task-1"


def test_headers_and_properties_count_towards_the_64_kib() -> None:
    big = {**HEADERS, "x-note": "h" * MAX_MESSAGE_BYTES}
    refusal = inspect(headers=big)
    assert refusal is not None and "with headers and properties" in refusal.reason
    refusal = inspect(properties={"correlation_id": "p" * MAX_MESSAGE_BYTES})
    assert refusal is not None and "at most 65536 bytes" in refusal.reason


def test_deep_headers_are_refused() -> None:
    deep: object = "x"
    for _ in range(2000):
        deep = {"n": deep}
    refusal = inspect(headers={**HEADERS, "x": deep})
    assert refusal is not None and "nested more than 48" in refusal.reason


def test_a_task_id_against_the_request_id_rule_is_refused_under_a_derived_id() -> None:
    refusal = inspect(headers={**HEADERS, "id": "id\u202eevil"})
    assert refusal is not None and "task id: must match" in refusal.reason
    assert refusal.task_id is not None and refusal.task_id.startswith("invalid-id-")


def test_expiry_is_read_from_the_celery_header() -> None:
    from datetime import UTC, datetime

    from grant_worker.tasks.messages.inspection import expiry_of

    assert expiry_of({"expires": "2026-01-01T00:00:00+00:00"}) == datetime(2026, 1, 1, tzinfo=UTC)
    assert expiry_of({"expires": "2026-01-01T00:00:00"}) == datetime(2026, 1, 1, tzinfo=UTC)
    assert expiry_of({"expires": None}) is None
    assert expiry_of({"expires": "soon"}) is None
