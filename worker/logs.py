"""Logging for every process: one format (JSON or text), the request in context, named events.

- `configure_logging(fmt, level)` installs one handler on the root logger, so Celery's own lines,
  kombu's and ours come out alike. `GRANTS_LOG_FORMAT=json|text`; unset: JSON when stderr is not
  a terminal (a container, systemd, a pipe), text when a person watches.
- `request_context(request_id, batch_id)` puts the request on every line logged inside it
  (retries, conflict resolution, Auth0 errors) without passing it down by hand; the Celery task
  signals open it for each task (`worker.app`).
- The named events other modules call, so that levels and field names stay one convention:
  `log_outcome` (one per recorded outcome; failed/rejected at WARNING), `log_broker_fault` and
  `log_breaker_change` (ERROR when something is wrong with Redis or the tenant as a whole).

This module imports nothing of the project's besides the outcome model, so `tasks` may use it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any, Literal

from pythonjsonlogger.json import JsonFormatter

from grant_worker.tasks.messages.models import Outcome

LogFormat = Literal["json", "text"]

OUTCOME_EVENT = "outcome"
BROKER_FAULT_EVENT = "broker_fault"
BREAKER_EVENT = "breaker"

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "grants_request_id", default=None
)
_batch_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "grants_batch_id", default=None
)

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s%(context)s"
_JSON_FIELDS = ["asctime", "levelname", "name", "message", "process", "threadName"]

log = logging.getLogger("grant_worker.events")


def choose_format(setting: str | None, stream: IO[str] | None = None) -> LogFormat:
    """`setting` where given; otherwise JSON unless `stream` (stderr) is a terminal."""
    if setting in ("json", "text"):
        return setting  # type: ignore[return-value]
    stream = stream if stream is not None else sys.stderr
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):
        interactive = False
    return "text" if interactive else "json"


class RequestContextFilter(logging.Filter):
    """Adds `request_id` / `batch_id` of the current request to each record that has none."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = _request_id.get()
        if getattr(record, "batch_id", None) is None:
            record.batch_id = _batch_id.get()
        return True


class _TextFormatter(logging.Formatter):
    """Plain lines, with the request (when there is one) at the end."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        record.context = f" [request_id={request_id}]" if request_id else ""
        return super().format(record)


# Celery's task lines carry the task's arguments in `data`: the whole request (up to 64 KiB,
# metadata included) on every "received" line. The id and task name are what a line needs.
_CELERY_DATA_KEPT = ("id", "name", "eta", "runtime", "exc")


class _JsonFormatter(JsonFormatter):
    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        data = log_data.get("data")
        if isinstance(data, dict):
            log_data["data"] = {k: v for k, v in data.items() if k in _CELERY_DATA_KEPT}
        # Fields that carry no value are noise in every line of a busy worker.
        return {key: value for key, value in log_data.items() if value is not None}


def make_formatter(fmt: LogFormat) -> logging.Formatter:
    if fmt == "json":
        return _JsonFormatter(
            _JSON_FIELDS,
            rename_fields={"levelname": "level", "asctime": "time", "name": "logger"},
            timestamp=False,
        )
    return _TextFormatter(_TEXT_FORMAT)


_HANDLER_NAME = "grant_worker"


def configure_logging(
    fmt: str | None = None, level: str | int = "INFO", stream: IO[str] | None = None
) -> LogFormat:
    """One handler on the root logger for the chosen format; idempotent. Returns the format."""
    chosen = choose_format(fmt, stream)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(make_formatter(chosen))
    handler.addFilter(RequestContextFilter())
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    # Python warnings (Celery's SecurityWarning, deprecations) as log lines in the same format.
    logging.captureWarnings(True)
    return chosen


@contextlib.contextmanager
def request_context(request_id: str | None, batch_id: str | None = None) -> Iterator[None]:
    """Every line logged inside carries `request_id` (and `batch_id`)."""
    id_token = _request_id.set(request_id)
    batch_token = _batch_id.set(batch_id)
    try:
        yield
    finally:
        _request_id.reset(id_token)
        _batch_id.reset(batch_token)


def enter_request(request_id: str | None, batch_id: str | None = None) -> None:
    """`request_context` for code that has a start and an end hook instead of a block."""
    _request_id.set(request_id)
    _batch_id.set(batch_id)


def leave_request() -> None:
    _request_id.set(None)
    _batch_id.set(None)


def _duration_s(outcome: Outcome) -> float | None:
    try:
        started = datetime.fromisoformat(outcome.received_at.replace("Z", "+00:00"))
        finished = datetime.fromisoformat(outcome.finished_at.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    return round((finished - started).total_seconds(), 3)


def log_outcome(outcome: Outcome) -> None:
    """The one event of a request's recorded outcome: WARNING when failed or rejected."""
    code = outcome.error.code if outcome.error else None
    level = logging.INFO if outcome.done else logging.WARNING
    log.log(
        level,
        "request %s %s%s",
        outcome.request_id,
        outcome.status,
        f" ({code})" if code else "",
        extra={
            "event": OUTCOME_EVENT,
            "request_id": outcome.request_id,
            "batch_id": outcome.batch_id,
            "status": outcome.status,
            "code": code,
            "attempts": outcome.attempts,
            "duration_s": _duration_s(outcome),
        },
    )


def log_broker_fault(what: str, exc: BaseException | str) -> None:
    """Redis (the broker and the record) failed us: ERROR, with the reason, never the URL."""
    reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    log.error("%s: %s", what, reason, extra={"event": BROKER_FAULT_EVENT, "reason": reason})


def log_breaker_change(state: str, reason: str) -> None:
    """The fleet's breaker changed state (issue 7 calls this): ERROR when it opens."""
    level = logging.ERROR if state == "open" else logging.WARNING
    log.log(
        level,
        "breaker %s: %s",
        state,
        reason,
        extra={"event": BREAKER_EVENT, "state": state, "reason": reason},
    )
