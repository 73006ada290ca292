"""A corpus of bad inputs through a real worker: each leaves a rejection that names the problem,
nothing is ever unpickled, and the worker keeps consuming throughout."""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from grant_worker.config.settings import Settings
from grant_worker.tasks.messages.decoding import safe_request_id
from grant_worker.tasks.messages.inspection import TASK_NAME
from grant_worker.tasks.messages.models import MAX_MESSAGE_BYTES
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess
from tests.bad_requests import BAD_ENVELOPES, BAD_TEXTS, UTF8_METADATA_WITHIN_LIMIT, nested_text
from tests.integration.conftest import next_client_id, push_raw, raw_celery_message

API = "https://api.example.com/"


class _LeavesMarker:
    """Unpickling this creates a file: proof of deserialization if the file ever appears."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def celery_body(request: Any) -> bytes:
    return json.dumps([[], {"request": request}, {}]).encode()


def worker_level_cases(marker: Path) -> list[tuple[str, dict[str, Any], list[str]]]:
    """(task id, raw message parts, words the reason must contain)."""
    good = {"grant": {"client_id": "svc-00001", "audience": API}}
    return [
        (
            "m-pickle",
            {
                "body": pickle.dumps(((), {"request": _LeavesMarker(str(marker))}, {})),
                "content_type": "application/x-python-serialize",
            },
            ["JSON only"],
        ),
        ("m-yaml", {"body": b"request: {}", "content_type": "application/x-yaml"}, ["JSON only"]),
        (
            "m-oversize",
            {"body": celery_body({**good, "metadata": {"x": "y" * MAX_MESSAGE_BYTES}})},
            ["at most 65536 bytes"],
        ),
        ("m-unknown-task", {"body": celery_body(good), "task": "grants.delete"}, ["unknown task"]),
        ("m-not-json", {"body": b"[[], {request: }"}, ["not valid JSON"]),
        ("m-bad-utf8", {"body": b'[[], {"request": "\xff\xfe"}, {}]'}, ["UTF-8"]),
        ("m-not-triple", {"body": json.dumps({"request": good}).encode()}, ["[args, kwargs"]),
        ("m-positional", {"body": json.dumps([[good], {}, {}]).encode()}, ["args"]),
        (
            "m-extra-kwarg",
            {"body": json.dumps([[], {"request": good, "priority": 1}, {}]).encode()},
            ["priority"],
        ),
        # A 2.4 KB body nested 1,200 deep: decoded by plain `json`, it would crash the worker.
        (
            "m-deep-body",
            {"body": b'[[], {"request": ' + nested_text(1200).encode() + b"}, {}]"},
            ["nested 1202 deep"],
        ),
        # The 64 KiB count headers and properties in.
        (
            "m-big-headers",
            {"body": celery_body(good), "headers": {"x-note": "h" * MAX_MESSAGE_BYTES}},
            ["with headers and properties"],
        ),
        # Task ids under the request-id rule: outcomes go under an id derived from them.
        (safe_request_id(BIDI_ID), {"body": celery_body(good), "id": BIDI_ID}, ["task id"]),
        (safe_request_id(LONG_ID), {"body": celery_body(good), "id": LONG_ID}, ["task id"]),
    ]


BIDI_ID = "id\u202eevil"
LONG_ID = "L" * 300


def unread_items(queue: str) -> list[str]:
    """Items refused before they are decoded: no task id can be read from them."""
    big_header = json.loads(
        raw_celery_message(queue=queue, task=TASK_NAME, task_id="unread-1", body=b"[]")
    )
    big_header["headers"]["x-pad"] = "p" * (8 * 1024 * 1024)
    huge_id = json.loads(
        raw_celery_message(queue=queue, task=TASK_NAME, task_id="x" * (4 * 1024 * 1024), body=b"[]")
    )
    return [json.dumps(big_header), json.dumps(huge_id)]


@pytest.fixture
def worker(settings: Settings, start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    return start_worker(settings)


def test_every_bad_input_is_rejected_with_its_reason_and_the_worker_keeps_consuming(
    worker: WorkerProcess,
    client: GrantClient,
    settings: Settings,
    redis_client: Any,
    emulator: Any,
    tmp_path: Path,
    figures: Callable[..., None],
) -> None:
    queue = settings.grants_queue
    marker = tmp_path / "unpickled.marker"
    expected: dict[str, list[str]] = {}

    def push(
        task_id: str,
        body: bytes,
        *,
        task: str = TASK_NAME,
        content_type: str = "",
        headers: dict[str, Any] | None = None,
    ) -> None:
        message = raw_celery_message(
            queue=queue,
            task=task,
            task_id=task_id,
            body=body,
            content_type=content_type or "application/json",
        )
        if headers:
            parsed = json.loads(message)
            parsed["headers"].update(headers)
            message = json.dumps(parsed)
        push_raw(redis_client, queue, message)

    for index, (_name, envelope, words) in enumerate(BAD_ENVELOPES):
        push(f"e-{index}", celery_body(envelope))
        expected[f"e-{index}"] = words
    for index, (_name, text, words) in enumerate(BAD_TEXTS):
        if isinstance(text, bytes):
            push(f"t-{index}", b'[[], {"request": "' + text + b'"}, {}]')
            expected[f"t-{index}"] = ["UTF-8"]
        else:
            push(f"t-{index}", celery_body(text))
            expected[f"t-{index}"] = words
    for task_id, parts, words in worker_level_cases(marker):
        push(
            parts.get("id", task_id),
            parts["body"],
            task=parts.get("task", TASK_NAME),
            content_type=parts.get("content_type", ""),
            headers=parts.get("headers"),
        )
        expected[task_id] = words
    for item in unread_items(queue):
        redis_client.lpush(queue, item)
    # Items that are not broker messages at all: kombu would end the worker on them.
    redis_client.lpush(queue, "this is not a message")
    redis_client.lpush(queue, json.dumps({"body": "e30=", "content-type": "application/json"}))
    # Producers without Celery: the same kinds of garbage on the intake stream.
    redis_client.xadd(client.keys.intake, {"request": "{not json", "x": "1"})
    redis_client.xadd(client.keys.intake, {"no_request_field": "1"})
    # Nested 1,200 deep: decoded by plain `json`, it would kill every bridge that claimed it.
    redis_client.xadd(client.keys.intake, {"request": nested_text(1200)})

    reasons: dict[str, str] = {}
    for task_id, words in expected.items():
        outcome = client.wait(task_id, timeout_s=30)
        assert outcome.status == "rejected", (task_id, outcome)
        assert outcome.error is not None
        reasons[task_id] = outcome.error.message
        for word in words:
            assert word in outcome.error.message, (task_id, outcome.error.message)

    dead = {fields["request_id"] for _id, fields in redis_client.xrange(client.keys.dead)}
    assert set(expected) <= dead
    deadline = time.monotonic() + 15
    others = 7
    while len(dead) < len(expected) + others and time.monotonic() < deadline:
        time.sleep(0.1)
        dead = {fields["request_id"] for _id, fields in redis_client.xrange(client.keys.dead)}
    # The three intake entries, the two items that are no messages and the two refused unread
    # leave dead letters too.
    assert len(dead) == len(expected) + others
    letters = [json.loads(f["dead"]) for _id, f in redis_client.xrange(client.keys.dead)]
    messages = [letter["error"]["message"] for letter in letters]
    assert sum("broker item: at most" in message for message in messages) == 2, messages
    assert any("intake entry `request`: nested 1200 deep" in message for message in messages)
    # No key was ever named after the 300-character or bidirectional task ids.
    assert not list(redis_client.scan_iter(f"{settings.grants_key_prefix}*{LONG_ID}*"))
    assert not list(redis_client.scan_iter(f"{settings.grants_key_prefix}*\u202e*"))

    assert not marker.exists(), "a pickle payload was deserialized"
    assert worker.alive()
    good = client.submit(
        {
            "grant": {"client_id": next_client_id(), "audience": API},
            "metadata": UTF8_METADATA_WITHIN_LIMIT,
        }
    )
    created = client.wait(good, timeout_s=30)
    assert created.status == "created"
    assert created.metadata == UTF8_METADATA_WITHIN_LIMIT
    # Nothing bad reached Auth0: the only create is the good request's.
    assert emulator.admin.stats()["requests_by_route"].get("POST /api/v2/client-grants") == 1
    assert "Unrecoverable" not in worker.log()
    figures(bad_inputs=len(expected) + others, rejected=len(dead), unpickled=0, worker_restarts=0)
