"""Log records with the job and worker they belong to, as text or JSON lines.

`log_context(job=..., worker=...)` binds ids for the code it wraps (a context variable, so
threads and Celery tasks each see their own); the filter copies them onto every record and
the formatters write one line per event: time, level, logger, ids, message (and the
traceback, folded into the same JSON object when LOG_FORMAT=json).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

_context: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "hepstore_log_context", default=()
)
FIELDS = ("job", "worker")


@contextlib.contextmanager
def log_context(**ids: object) -> Iterator[None]:
    """Attach ids (job=, worker=) to every log record made inside the block."""
    merged = {**dict(_context.get()), **{k: str(v) for k, v in ids.items() if v}}
    token = _context.set(tuple(merged.items()))
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """`2026-01-01T12:00:00.000+00:00 INFO reinterpret.jobs [job=3 worker=w1] message`."""

    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{k}={getattr(record, k)}" for k in FIELDS if getattr(record, k, None))
        text = f"{_time(record)} {record.levelname} {record.name} "
        text += f"[{ids}] " if ids else ""
        text += record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        # One event, one line: continuation lines are indented so log shippers can join them.
        return text.replace("\n", "\n    ")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            if getattr(record, key, None):
                data[key] = getattr(record, key)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)
