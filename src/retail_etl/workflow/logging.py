"""Execution logs: every event as a JSON line in ``<logs>/<execution_id>.jsonl``, and on a stream as
plain lines (for a terminal) or JSON lines (``--log-format json``, for log shippers).

A JSON line is ``{"time", "level", "execution_id", "step", "event", ...fields}``. Credentials inside
URLs are masked before anything is written (:func:`retail_etl.redact.redact`), and every line is safe
on a terminal: JSON escapes control characters, plain lines show them escaped.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from retail_etl.redact import escape_control, escape_json_controls, mask_secrets, redact
from retail_etl.workflow.state import iso, utcnow

LogFormat = Literal["text", "json"]


def format_text(record: dict[str, Any]) -> str:
    """``2024-01-15 10:30:00 INFO  validate  TaskSucceeded rows_in=10 rows_out=9``."""
    time = str(record.get("time", ""))[:19].replace("T", " ")
    level = str(record.get("level", "info")).upper()
    step = record.get("step") or "-"
    fields = " ".join(
        f"{k}={_text_value(v)}" for k, v in record.items()
        if k not in ("time", "level", "execution_id", "step", "event") and v is not None
    )
    line = f"{time} {level:<7} {step:<12} {record.get('event', '')}" + (f" {fields}" if fields else "")
    return escape_control(line)


def _text_value(value: Any) -> str:
    if isinstance(value, str) and value and not any(c.isspace() or c in "\"=" or not c.isprintable() for c in value):
        return value
    return escape_json_controls(json.dumps(value, default=str, ensure_ascii=False))


class ExecutionLog:
    """The log of one execution. Call it: ``log("RowsRead", step="validate", rows=10)``."""

    def __init__(
        self,
        execution_id: str,
        *,
        file: Path | None = None,
        stream: TextIO | None = None,
        format: LogFormat = "text",
        wall: Callable[[], dt.datetime] = utcnow,
        on_close: Callable[[Path], None] | None = None,
    ) -> None:
        self.execution_id = execution_id
        self.on_close = on_close
        self.path = file
        self.stream = stream
        self.format = format
        self.wall = wall
        self._file: TextIO | None = None
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            self._file = file.open("a", encoding="utf-8", buffering=1)

    def __call__(self, event: str, *, step: str | None = None, level: str = "info", **fields: Any) -> None:
        record = redact({"time": iso(self.wall()), "level": level, "execution_id": self.execution_id,
                         "step": step, "event": event, **fields})
        line = mask_secrets(escape_json_controls(json.dumps(record, default=str, ensure_ascii=False)))
        if self._file is not None:
            self._file.write(line + "\n")
        if self.stream is not None:
            self.stream.write((line if self.format == "json" else format_text(record)) + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            if self.on_close is not None and self.path is not None:
                self.on_close(self.path)


@dataclass(frozen=True)
class LogSettings:
    """Where the runner writes execution logs: ``directory/<execution_id>.jsonl`` and/or ``stream``;
    ``on_close`` gets the file once the execution is over (an S3 lake uploads it then)."""

    directory: Path | None = None
    stream: TextIO | None = None
    format: LogFormat = "text"
    on_close: Callable[[Path], None] | None = None

    def open(self, execution_id: str, wall: Callable[[], dt.datetime] = utcnow) -> ExecutionLog:
        file = None if self.directory is None else Path(self.directory) / f"{execution_id}.jsonl"
        return ExecutionLog(execution_id, file=file, stream=self.stream, format=self.format, wall=wall,
                            on_close=self.on_close)


def read_log(text: str, format: LogFormat = "text") -> Iterator[str]:
    """The lines of a log file's ``text`` as written (``json``) or rendered as plain lines (``text``),
    with secrets masked and control characters escaped (logs written by older versions included)."""
    for line in text.split("\n"):  # not splitlines(): JSON may hold U+2028 and other breaks
        if not line:
            continue
        if format == "json":
            yield mask_secrets(escape_json_controls(line))
            continue
        try:
            yield format_text(redact(json.loads(line)))
        except json.JSONDecodeError:  # a line cut short by a killed process
            yield escape_control(mask_secrets(line))
