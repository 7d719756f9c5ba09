"""Structured logging: every log record is one JSON object on one line (stderr by default).

Why JSON lines: outcore runs unattended (servers, benchmarks) and its logs are read by programs as often as by
people. ``OUTCORE_LOG_LEVEL`` sets the level (default WARNING, so commands stay quiet unless asked).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

_CONFIGURED = False


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            event.update(fields)
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str, ensure_ascii=False)


def configure(level: str | None = None, stream: Any = None) -> None:
    """Install the JSON-lines handler on the ``outcore`` logger tree (idempotent)."""
    global _CONFIGURED
    root = logging.getLogger("outcore")
    if not _CONFIGURED:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(JsonLineFormatter())
        root.addHandler(handler)
        root.propagate = False
        _CONFIGURED = True
    root.setLevel((level or os.environ.get("OUTCORE_LOG_LEVEL") or "WARNING").upper())


def get_logger(name: str) -> logging.Logger:
    """A logger under ``outcore.``; pass structured fields with ``log(logger, "info", "msg", key=value)``."""
    configure()
    return logging.getLogger(f"outcore.{name}")


def log(logger: logging.Logger, level: str, msg: str, **fields: Any) -> None:
    logger.log(logging.getLevelName(level.upper()), msg, extra={"fields": fields})
