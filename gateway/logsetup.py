"""Process logging: stdlib `logging` as the one sink, text or one-JSON-object-per-line.

Twisted's own log events are bridged into stdlib logging so operators configure one thing. JSON lines
are encoded with orjson; extra fields given as ``extra={"fields": {...}}`` become top-level keys.
Text lines escape control characters, so a logged value (an event id, an app id) cannot forge lines.
"""

from __future__ import annotations

import logging
import re
import sys
import time

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


#: Characters that would let logged input forge or hide lines: C0/C1 controls (newlines, ANSI escapes),
#: Unicode line/paragraph separators and bidirectional overrides.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def one_line(text: str) -> str:
    """`text` with every line-breaking or display-altering character escaped (``\\n``, ``\\x1b``, ``\\u202e``)."""
    return _UNSAFE.sub(_escape, text)


class TextFormatter(logging.Formatter):
    """One line per record: message and fields come from requests, so they are escaped; tracebacks are not."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        return one_line(super().formatMessage(record))

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            line += " " + one_line(" ".join(f"{k}={v}" for k, v in fields.items()))
        return line


def setup(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    # aioapns logs every non-200 at ERROR with the device token in it; our pushkin reports outcomes itself.
    logging.getLogger("aioapns").setLevel(logging.CRITICAL)
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    globalLogBeginner.beginLoggingTo([STDLibLogObserver(name="twisted")], redirectStandardIO=False,
                                     discardBuffer=True)
