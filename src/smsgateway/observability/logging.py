"""Log lines for machines (``SMSGW_LOG_FORMAT=json``) or people (``text``).

Every line carries the request id of the work in hand (``smsgateway.context``): the
HTTP request's, or, in the dispatcher, the one stored with the message it is sending.
Phone numbers are masked in every line, ours and libraries' alike (``+336******04``).

A JSON line::

    {"time": "2026-11-21T21:30:00.123Z", "level": "INFO", "logger": "smsgateway.provider",
     "message": "provider call send ok in 51.2 ms", "request_id": "9f1c...",
     "operation": "send", "outcome": "ok", "duration_ms": 51.2}
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any, Literal, TextIO

import orjson

from smsgateway.context import current_request_id
from smsgateway.numbers import mask

# E.164 (+33601020304) and the international 00 spelling OVHcloud uses (0033601020304).
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{8,15}|00\d{8,15})(?!\d)")

# Attributes every LogRecord has; anything else was passed with ``extra=``.
# (uvicorn adds ``color_message``, the message again with terminal colours.)
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "color_message",
}

_HANDLER_NAME = "smsgateway"


def mask_phones(text: str) -> str:
    """Every phone number in ``text`` masked."""
    return _PHONE.sub(lambda found: mask(found.group(0)), text)


class ContextFilter(logging.Filter):
    """Adds ``request_id`` to each record and masks phone numbers in its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        message = record.getMessage()
        masked = mask_phones(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line (orjson), extras included."""

    def format(self, record: logging.LogRecord) -> str:
        created = time.gmtime(record.created)
        body: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", created) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            body["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                body[key] = value
        if record.exc_info:
            body["exception"] = mask_phones(self.formatException(record.exc_info))
        if record.stack_info:
            body["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(body, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "request_id", None) is None:
            record.request_id = "-"
        text = super().format(record)
        return mask_phones(text) if record.exc_info else text


def build_handler(
    log_format: Literal["json", "text"], stream: TextIO | None = None
) -> logging.Handler:
    """A stream handler (stderr by default) with our filter and formatter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    return handler


def configure_logging(level: str, log_format: Literal["json", "text"]) -> None:
    """Send every log line (uvicorn's too) through one handler on the root logger.

    Idempotent: a second call replaces the handler. uvicorn's own access log is
    turned off; ``ObservabilityMiddleware`` writes one line per request instead,
    with the request id and without secrets from the path or the query string.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    root.addHandler(build_handler(log_format))
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    # aiosqlite writes every statement with its parameters (numbers, key hashes,
    # webhook secrets) at DEBUG: it stays at INFO even when everything else is DEBUG.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, root.level))
    # httpx and httpcore name every URL they call, query string and credentials
    # included (webhook URLs are the clients'): only their warnings are kept.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
