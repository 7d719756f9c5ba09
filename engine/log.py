"""Structured logging: every log record is one JSON object on one line (stderr by default).

Why JSON lines: outcore runs unattended (servers, benchmarks) and its logs are read by programs as often as by
people. ``OUTCORE_LOG_LEVEL`` sets the level (default WARNING, so commands stay quiet unless asked).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
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


class Progress:
    """A progress line for long work: a redrawn bar on a terminal, JSON-lines events otherwise.

    Scripts and CI read the JSON events; people see the bar. Both report the same numbers.
    """

    def __init__(self, label: str, total: int, unit: str = "B", stream: Any = None) -> None:
        self.label = label
        self.total = max(total, 0)
        self.unit = unit
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._t0 = time.monotonic()
        self._last = 0.0
        self._last_pct = -1

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.tty:
            if now - self._last >= 0.1 or self.done >= self.total:
                self._last = now
                self._draw()
        else:
            pct = int(100 * self.done / self.total) if self.total else 100
            if pct // 10 != self._last_pct // 10:
                self._last_pct = pct
                self._emit(pct)

    def _fmt(self, n: float) -> str:
        if self.unit != "B":
            return f"{int(n)}"
        for suffix in ("B", "KiB", "MiB", "GiB"):
            if n < 1024 or suffix == "GiB":
                return f"{n:.0f} {suffix}" if suffix == "B" else f"{n:.1f} {suffix}"
            n /= 1024
        return f"{n:.1f} GiB"

    def _draw(self) -> None:
        frac = self.done / self.total if self.total else 1.0
        width = 30
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        elapsed = time.monotonic() - self._t0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        self.stream.write(
            f"\r{self.label} [{bar}] {frac * 100:5.1f}% {self._fmt(self.done)}/{self._fmt(self.total)}"
            f" {self._fmt(rate)}/s "
        )
        self.stream.flush()

    def _emit(self, pct: int) -> None:
        event = {"event": "progress", "label": self.label, "done": self.done, "total": self.total, "pct": pct}
        self.stream.write(json.dumps(event) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
        elif self._last_pct < 100:
            self._emit(100 if self.done >= self.total else self._last_pct)
