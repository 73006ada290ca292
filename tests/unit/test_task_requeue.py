"""What the task does when the copy it must re-publish cannot be published, and whose handler
it works through.

Celery's `retry()` answers a failed publish with `Reject(requeue=False)`: the delivery would be
acknowledged and the request gone without an outcome. A request going back to the queue
(`ReturnToQueue`) must instead be requeued as it is. No Redis answers here, by design: the
broker's address is a closed port, so the publish fails the way it does while Redis is away.
"""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery
from celery.exceptions import Reject

from grant_worker.tasks.errors import ReturnToQueue
from grant_worker.tasks.messages.inspection import TASK_NAME
from grant_worker.tasks.task import register_create_task


class WaitingHandler:
    """Every request must wait: a fleet slot is far off."""

    def handle(self, raw: Any, *, fallback_id: str) -> None:
        raise ReturnToQueue("no fleet slot within 5 s", delay_s=1.0)


def test_a_request_whose_return_to_the_queue_cannot_be_published_is_requeued_not_dropped() -> None:
    app = Celery("requeue-test", broker="redis://127.0.0.1:1/0")
    app.conf.task_publish_retry = False
    app.conf.broker_connection_retry = False
    app.conf.broker_connection_timeout = 1
    register_create_task(app, lambda: WaitingHandler())  # type: ignore[arg-type, return-value]
    task = app.tasks[TASK_NAME]
    task.push_request(id="req-1", called_directly=False, is_eager=False, retries=0)
    try:
        with pytest.raises(Reject) as refused:
            task.run(request={"grant": {"client_id": "c", "audience": "https://api/"}})
    finally:
        task.pop_request()
    assert refused.value.requeue is True


class RecordingHandler:
    def __init__(self) -> None:
        self.calls = 0

    def handle(self, raw: Any, *, fallback_id: str) -> None:
        self.calls += 1


def test_each_app_works_through_its_own_handler() -> None:
    # A shared task was built into every app made later in the process, bound to the first
    # app's handler: the second app's requests went through the first app's settings.
    first, second = RecordingHandler(), RecordingHandler()
    for handler in (first, second):
        app = Celery("own-handler-test", broker="memory://")
        register_create_task(app, lambda handler=handler: handler)  # type: ignore[misc]
        task = app.tasks[TASK_NAME]
        task.push_request(id="req-1", called_directly=False, is_eager=False, retries=0)
        try:
            task.run(request={"grant": {"client_id": "c", "audience": "https://api/"}})
        finally:
            task.pop_request()
    assert (first.calls, second.calls) == (1, 1)
