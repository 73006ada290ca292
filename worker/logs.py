"""Log formatting for every process (the worker, every `grants` command): one format, JSON or
text, with the request in context.

`configure_logging(fmt, level)` installs one handler on the root logger, so Celery's own lines,
kombu's and ours come out alike. `GRANTS_LOG_FORMAT=json|text`; unset: JSON when stderr is not
a terminal (a container, systemd, a pipe), text when a person watches. The request on each
line comes from `tasks.events` (the task's hooks enter and leave it); the named events
themselves (`log_outcome`, `log_broker_fault`) live there too, beside the code that emits them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import IO, Any, Literal

from pythonjsonlogger.json import JsonEncoder, JsonFormatter

from grant_worker.tasks.events import current_request

LogFormat = Literal["json", "text"]

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s%(context)s"
_JSON_FIELDS = ["asctime", "levelname", "name", "message", "process", "threadName"]


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
        request_id, batch_id = current_request()
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id
        if getattr(record, "batch_id", None) is None:
            record.batch_id = batch_id
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
    """python-json-logger's formatter, with the same output for less CPU per line (a worker
    logs three lines per request): one JSON encoder for every line instead of one built per
    line, and the fields gathered without the steps this configuration has nothing for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # What `json.dumps(..., cls=self.json_encoder, ...)` builds on every call; an encoder
        # keeps no state between calls.
        self._encoder = (self.json_encoder or JsonEncoder)(
            default=self.json_default, indent=self.json_indent, ensure_ascii=self.json_ensure_ascii
        )
        self._lean = self.json_serializer is json.dumps and not (
            self.defaults or self.static_fields or self.timestamp or self.rename_fields_keep_missing
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        if not self._lean:
            super().add_fields(log_data, record, message_dict)
            return
        # The base class's steps without defaults, static fields or a timestamp: the named
        # fields, the logged dict, then the record's extras, each under its renamed key.
        rename = self.rename_fields
        attributes = record.__dict__
        for name in self._required_fields:
            log_data[rename.get(name, name)] = attributes.get(name)
        for key, value in message_dict.items():
            log_data[rename.get(key, key)] = value
        skip = self._skip_fields
        for key, value in attributes.items():
            if key not in skip and not (isinstance(key, str) and key.startswith("_")):
                log_data[rename.get(key, key)] = value

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        if not self._lean:
            return super().jsonify_log_record(log_data)
        return self._encoder.encode(log_data)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # ISO 8601 in UTC with its zone (2026-12-05T13:00:00.123Z): log stores and people in
        # other zones read it without knowing where the worker ran.
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        return stamp.replace("+00:00", "Z")

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


def configure_early_logging() -> LogFormat:
    """Before the settings are read, so that their own warnings (an unknown `GRANTS_*`
    variable) come out in the process's format: `GRANTS_LOG_FORMAT` from the environment alone,
    WARNING and above. The worker configures again from its settings once they are read."""
    return configure_logging(os.environ.get("GRANTS_LOG_FORMAT"), logging.WARNING)


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


class _NoSuccessLines(logging.Filter):
    """Celery's "Task … succeeded in …" says a second time what the outcome's own line says
    (`tasks.events.log_outcome`: the request, its status), at a line's CPU per request."""

    def __init__(self, success_format: str) -> None:
        super().__init__()
        self._success_format = success_format

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg is not self._success_format


def leave_out_success_lines(level: int) -> None:
    """Above DEBUG, a worker logs a request's end once: Celery's success line is left out (its
    received, retry and failure lines stay)."""
    # Imported here: a process that only configures logging (a command) loads no Celery.
    from celery.app.trace import LOG_SUCCESS

    trace = logging.getLogger("celery.app.trace")
    for existing in [f for f in trace.filters if isinstance(f, _NoSuccessLines)]:
        trace.removeFilter(existing)
    if level > logging.DEBUG:
        trace.addFilter(_NoSuccessLines(LOG_SUCCESS))
