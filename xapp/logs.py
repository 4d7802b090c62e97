"""Structured logging: one JSON object per line, and the decision log.

Every decision the xApp takes (drift, trigger, suppression, job phase, rollout step) goes through
``decision(event, **fields)``: a line such as
``{"ts": "2026-01-01T00:00:00.000Z", "level": "INFO", "logger": "kdran.xapp.decision",
"event": "trigger_suppressed", "group": "gnb_1", "reason": "cooldown"}``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

DECISION_LOGGER = "kdran.xapp.decision"
_decisions = logging.getLogger(DECISION_LOGGER)


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object; ``extra={"fields": {...}}`` adds keys."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, Any] = {"ts": f"{stamp}.{int(record.msecs):03d}Z",
                                "level": record.levelname, "logger": record.name}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        message = record.getMessage()
        if message:
            line["msg"] = message
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, sort_keys=False)


def configure_logging(level: str = "INFO") -> None:
    """Send every ``kdran`` log record to stderr as JSON lines at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("kdran")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def decision(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one decision as a structured line (``event`` plus ``fields``)."""
    _decisions.log(level, "", extra={"fields": {"event": event, **fields}})
