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
from grant_worker.tasks.messages.gate import TASK_NAME
from grant_worker.tasks.messages.models import MAX_MESSAGE_BYTES
from grant_worker.worker.client import GrantClient
from grant_worker.worker.testing import WorkerProcess
from tests.bad_requests import BAD_ENVELOPES, BAD_TEXTS
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
    ]


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

    def push(task_id: str, body: bytes, *, task: str = TASK_NAME, content_type: str = "") -> None:
        message = raw_celery_message(
            queue=queue,
            task=task,
            task_id=task_id,
            body=body,
            content_type=content_type or "application/json",
        )
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
            task_id,
            parts["body"],
            task=parts.get("task", TASK_NAME),
            content_type=parts.get("content_type", ""),
        )
        expected[task_id] = words
    # Items that are not broker messages at all: kombu would end the worker on them.
    redis_client.lpush(queue, "this is not a message")
    redis_client.lpush(queue, json.dumps({"body": "e30=", "content-type": "application/json"}))
    # Producers without Celery: the same kinds of garbage on the intake stream.
    redis_client.xadd(client.keys.intake, {"request": "{not json", "x": "1"})
    redis_client.xadd(client.keys.intake, {"no_request_field": "1"})

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
    while len(dead) < len(expected) + 4 and time.monotonic() < deadline:
        time.sleep(0.1)
        dead = {fields["request_id"] for _id, fields in redis_client.xrange(client.keys.dead)}
    # The two intake entries and the two items that are no messages leave dead letters too.
    assert len(dead) == len(expected) + 4

    assert not marker.exists(), "a pickle payload was deserialized"
    assert worker.alive()
    good = client.submit({"grant": {"client_id": next_client_id(), "audience": API}})
    assert client.wait(good, timeout_s=30).status == "created"
    # Nothing bad reached Auth0: the only create is the good request's.
    assert emulator.admin.stats()["requests_by_route"].get("POST /api/v2/client-grants") == 1
    figures(bad_inputs=len(expected) + 4, rejected=len(dead), unpickled=0, worker_restarts=0)
