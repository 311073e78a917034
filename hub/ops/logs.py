"""Logging: structured JSON lines by default, readable text with ``HUB_LOG_FORMAT=text``.

Records carry their context as fields (``extra=``): a websocket session logs ``event``,
``conn``, ``user``, ``codec``, ``peer`` and, when it ends, ``duration_s`` and ``code``. The
:class:`Redact` filter on the handler keeps secrets out whatever a caller passes: query
strings are cut from every path uvicorn logs (a client may put a token there), and fields
named like a credential are replaced with ``[redacted]``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
#: Field names whose values are never written (compared lowercased, ``-`` as ``_``).
SECRET_FIELDS = frozenset(
    {"token", "secret", "password", "api_key", "apikey", "admin_key", "authorization",
     "x_auth_token", "cookie", "query", "query_string"}
)  # fmt: skip
REDACTED = "[redacted]"


def strip_query(value: str) -> str:
    """``/ws?token=abc`` -> ``/ws?[redacted]``; anything without a query is unchanged."""
    path, sep, _ = value.partition("?")
    return f"{path}?{REDACTED}" if sep else value


class Redact(logging.Filter):
    """Cut query strings from uvicorn's paths and blank credential-named fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("uvicorn") and isinstance(record.args, tuple):
            record.args = tuple(
                strip_query(a) if isinstance(a, str) and a.startswith("/") else a
                for a in record.args
            )
        for key in list(vars(record)):
            if key not in _STANDARD and key.lower().replace("-", "_") in SECRET_FIELDS:
                setattr(record, key, REDACTED)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup(fmt: str = "json", level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(Redact())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Access logs would carry query strings; keep them out unless debugging.
    logging.getLogger("uvicorn.access").setLevel(
        logging.DEBUG if level == "debug" else logging.WARNING
    )
