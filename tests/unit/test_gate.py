"""The consumer's gate lets through only messages the task can read, without unpickling."""

from __future__ import annotations

import json
import pickle

from grant_worker.tasks.messages.gate import TASK_NAME, inspect_message
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
