"""The log format, the request context on log lines, the outcome event; liveness and readiness."""

from __future__ import annotations

import copy
import io
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from grant_worker.tasks import events
from grant_worker.tasks.messages.models import ErrorInfo, Outcome
from grant_worker.worker import logs
from grant_worker.worker.process import health


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_unless_on_a_terminal_unless_set() -> None:
    assert logs.choose_format(None, io.StringIO()) == "json"
    assert logs.choose_format(None, _Terminal()) == "text"
    assert logs.choose_format("text", io.StringIO()) == "text"
    assert logs.choose_format("json", _Terminal()) == "json"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.configure_logging("json", "INFO", stream)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def outcome(status: str, code: str | None = None) -> Outcome:
    return Outcome(
        request_id="r-1",
        batch_id="b-1",
        status=status,  # type: ignore[arg-type]
        error=ErrorInfo(code=code, message="m") if code else None,  # type: ignore[arg-type]
        attempts=2,
        received_at="2026-11-27T10:00:00.000Z",
        finished_at="2026-11-27T10:00:01.250Z",
    )


def test_every_line_logged_for_a_request_carries_its_id(captured: io.StringIO) -> None:
    events.enter_request("r-42", "b-7")
    try:
        logging.getLogger("grant_worker.tasks.provision").info("retrying in %.2f s", 0.5)
    finally:
        events.leave_request()
    logging.getLogger("celery").info("outside")
    inside, outside = lines(captured)
    assert inside["request_id"] == "r-42" and inside["batch_id"] == "b-7"
    assert inside["message"] == "retrying in 0.50 s"
    assert "request_id" not in outside and outside["logger"] == "celery"


def test_one_outcome_event_failed_at_warning_done_at_info(captured: io.StringIO) -> None:
    events.log_outcome(outcome("failed", "not_found"))
    events.log_outcome(outcome("created"))
    failed, created = lines(captured)
    assert failed["level"] == "WARNING" and created["level"] == "INFO"
    assert {k: failed[k] for k in ("event", "request_id", "batch_id", "status", "code")} == {
        "event": "outcome",
        "request_id": "r-1",
        "batch_id": "b-1",
        "status": "failed",
        "code": "not_found",
    }
    assert failed["attempts"] == 2 and failed["duration_s"] == 1.25


def test_broker_faults_are_errors_with_their_reason(captured: io.StringIO) -> None:
    events.log_broker_fault("Redis not reachable", ConnectionError("refused"))
    (broker,) = lines(captured)
    assert broker["level"] == "ERROR" and broker["event"] == "broker_fault"
    assert broker["reason"] == "ConnectionError: refused"


def test_text_lines_name_the_request() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.configure_logging("text", "INFO", stream)
        events.enter_request("r-9")
        try:
            logging.getLogger("x").warning("hello")
        finally:
            events.leave_request()
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert stream.getvalue().rstrip().endswith("WARNING x hello [request_id=r-9]")


def test_liveness_fails_when_the_loop_is_silent_with_free_threads() -> None:
    live = health.Liveness(capacity=2, last_loop_tick=100.0, busy=lambda: 0)
    assert live.problem(now=110.0) is None
    assert live.problem(now=100.0 + health.LOOP_STALE_S + 1) is not None
    live.busy = lambda: 2  # a full pool reads nothing: not a fault
    assert live.problem(now=100.0 + health.LOOP_STALE_S + 1) is None
    assert health.Liveness().problem() == "consumer loop not started"


def test_readiness_reports_each_registered_check() -> None:
    health.register_readiness_check("test-ok", lambda: None)
    health.register_readiness_check("test-open", lambda: "breaker open")

    def broken() -> str | None:
        raise RuntimeError("boom")

    health.register_readiness_check("test-broken", broken)
    try:
        results = health.readiness()
        assert results["test-ok"] is None
        assert results["test-open"] == "breaker open"
        assert results["test-broken"] == "check failed: RuntimeError"
    finally:
        for name in ("test-ok", "test-open", "test-broken"):
            health.unregister_readiness_check(name)


def test_celery_task_lines_keep_the_task_id_not_the_request_body(captured: io.StringIO) -> None:
    data = {"id": "r-1", "name": "grants.create", "args": "()", "kwargs": "{'request': {}}"}
    logging.getLogger("celery.worker.strategy").info("Task received", extra={"data": data})
    (line,) = lines(captured)
    assert line["data"] == {"id": "r-1", "name": "grants.create"}


def test_the_start_line_names_every_sentinel_and_no_password(captured: io.StringIO) -> None:
    from grant_worker.config.settings import Settings
    from grant_worker.worker.process.startup import log_start

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url="sentinel://:s3cret@10.0.0.1:26379;sentinel://:s3cret@10.0.0.2:26380",
        grants_sentinel_master="mymaster",
    )
    log_start(settings, "celery@host")
    text = captured.getvalue()
    assert "sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26380" in text
    assert "s3cret" not in text


def _records() -> list[logging.LogRecord]:
    try:
        raise ValueError("boom")
    except ValueError:
        failure = sys.exc_info()

    def record(msg: object, *args: object, **options: object) -> logging.LogRecord:
        made = logging.getLogger("grant_worker.t").makeRecord(
            "grant_worker.t",
            int(options.pop("level", logging.INFO)),  # type: ignore[call-overload]
            __file__,
            1,
            msg,
            args,
            options.pop("exc_info", None),  # type: ignore[arg-type]
            extra=options.pop("extra", None),  # type: ignore[arg-type]
            sinfo=options.pop("sinfo", None),  # type: ignore[arg-type]
        )
        logs.RequestContextFilter().filter(made)
        return made

    celery = {"id": "r-1", "name": "grants.create", "args": "()", "kwargs": "{}", "eta": None}
    return [
        record("plain %s", "line"),
        record("Task %(name)s[%(id)s] received", celery, extra={"data": celery}),
        record("failed", exc_info=failure, level=logging.ERROR),
        record("stack", sinfo="Stack (most recent call last):\n  here"),
        record({"a": 1, "exc_info": "given"}),
        record({"b": 2}, exc_info=failure),
        record(
            "odd values",
            extra={
                "when": datetime(2026, 1, 1, tzinfo=UTC),
                "error": ValueError("v"),
                "raw": b"\xff",
                "none": None,
                "_private": 1,
                "text": "é\u202e",
                "request_id": "given",
            },
        ),
    ]


def test_json_lines_are_what_python_json_logger_writes() -> None:
    ours = logs.make_formatter("json")
    # The library's own path, as configured for us: every field, value and order the same.
    reference = logs.make_formatter("json")
    reference._lean = False  # type: ignore[attr-defined]
    for record in _records():
        assert ours.format(copy.copy(record)) == reference.format(copy.copy(record))


def test_celerys_success_line_is_left_out_above_debug_its_retry_line_stays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from celery.app.trace import LOG_RETRY, LOG_SUCCESS

    trace = logging.getLogger("celery.app.trace")
    task = {"name": "grants.create", "id": "r-1", "runtime": 0.01, "return_value": None}
    try:
        with caplog.at_level(logging.DEBUG, logger="celery.app.trace"):
            logs.leave_out_success_lines(logging.INFO)
            trace.info(LOG_SUCCESS, task)
            trace.info(LOG_RETRY, {**task, "exc": "Retry in 1s"})
            assert "succeeded" not in caplog.text
            assert "retry: Retry in 1s" in caplog.text
            logs.leave_out_success_lines(logging.DEBUG)
            trace.info(LOG_SUCCESS, task)
            assert "Task grants.create[r-1] succeeded" in caplog.text
    finally:
        logs.leave_out_success_lines(logging.DEBUG)
