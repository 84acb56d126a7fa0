"""The workflow state database: executions, every step attempt, the event history, the circuit
breaker and the notification de-duplication log.

One SQLite file, shared with other parts of retail-etl: only the tables below are created here.
Times are stored as ISO-8601 UTC strings ending in ``Z``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retail_etl.errors import PermanentError
from retail_etl.redact import redact

RUNNING, SUCCEEDED, FAILED, ABORTED, SKIPPED = "RUNNING", "SUCCEEDED", "FAILED", "ABORTED", "SKIPPED"
STATUSES = (RUNNING, SUCCEEDED, FAILED, ABORTED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    input TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    error TEXT,
    cause TEXT,
    resumed_from TEXT,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    heartbeat_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_by_start ON executions (started_at);
CREATE TABLE IF NOT EXISTS step_runs (
    execution_id TEXT NOT NULL,
    step TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    duration_s REAL,
    delay_before_s REAL NOT NULL DEFAULT 0,
    rows_in INTEGER,
    rows_out INTEGER,
    rows_quarantined INTEGER,
    error TEXT,
    cause TEXT,
    details TEXT,
    PRIMARY KEY (execution_id, step, attempt)
);
CREATE TABLE IF NOT EXISTS events (
    execution_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    time TEXT NOT NULL,
    type TEXT NOT NULL,
    step TEXT,
    details TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);
CREATE TABLE IF NOT EXISTS workflow_circuit (
    workflow TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    failures INTEGER NOT NULL,
    opened_at TEXT,
    last_error TEXT,
    last_execution TEXT,
    trial_execution TEXT
);
CREATE TABLE IF NOT EXISTS notification_log (
    kind TEXT NOT NULL,
    job TEXT NOT NULL,
    rule TEXT NOT NULL,
    partition TEXT NOT NULL,
    last_sent_at TEXT NOT NULL,
    suppressed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, job, rule, partition)
);
"""


# A beat computed before a concurrent write may land after it: heartbeats never go back.
_BEAT = "UPDATE executions SET heartbeat_at = MAX(heartbeat_at, ?) WHERE id = ?"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime) -> str:
    """``2024-01-15T10:30:00.000Z``; a naive datetime is taken as local time."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text)


class ExecutionNotFoundError(PermanentError):
    """No execution has the given id."""


@dataclass
class StepRun:
    """One attempt of one step (status ``SKIPPED``: done by the execution this one resumed)."""

    step: str
    attempt: int
    status: str
    started_at: str
    ended_at: str | None = None
    duration_s: float | None = None
    delay_before_s: float = 0.0
    rows_in: int | None = None
    rows_out: int | None = None
    rows_quarantined: int | None = None
    error: str | None = None
    cause: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Execution:
    """An execution as recorded; ``exception`` is the caught error, in memory only (for exit codes)."""

    id: str
    workflow: str
    input: dict[str, Any]
    status: str
    started_at: str
    ended_at: str | None = None
    error: str | None = None
    cause: str | None = None
    resumed_from: str | None = None
    host: str = ""
    pid: int = 0
    heartbeat_at: str | None = None
    steps: list[StepRun] = field(default_factory=list)
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED

    @property
    def duration_s(self) -> float | None:
        start, end = parse_time(self.started_at), parse_time(self.ended_at)
        return None if start is None or end is None else (end - start).total_seconds()

    def completed(self) -> dict[str, StepRun]:
        """Steps done in this execution (or, when SKIPPED, in the one it resumed): name -> attempt."""
        return {r.step: r for r in self.steps if r.status in (SUCCEEDED, SKIPPED)}

    def raise_for_status(self) -> None:
        """Re-raise the error that failed the execution (keeps exit codes such as quality gate = 3)."""
        if self.status == SUCCEEDED:
            return
        if self.exception is not None:
            raise self.exception
        raise PermanentError(f"execution {self.id} {self.status}: {self.error}: {self.cause}")


@dataclass
class Event:
    seq: int
    time: str
    type: str
    step: str | None
    details: dict[str, Any]


class WorkflowState:
    """The workflow tables in the SQLite file ``path`` (created on first use).

    ``on_change`` is called after every committed write (an S3 lake publishes the file then).
    """

    def __init__(self, path: Path | str, on_change: Callable[[], None] | None = None) -> None:
        self.path = Path(path)
        self.on_change = on_change
        self._ready = False

    @contextlib.contextmanager
    def _db(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection inside one transaction; ``write`` takes the write lock at once (no upgrade deadlocks)."""
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        con.row_factory = sqlite3.Row
        try:
            if not self._ready:
                con.executescript(_SCHEMA)
                self._ready = True
            con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        finally:
            con.close()
        if write and self.on_change is not None:
            self.on_change()

    # -- executions -------------------------------------------------------------------------------

    def create_execution(
        self, execution_id: str, workflow: str, input: dict[str, Any], started_at: dt.datetime,
        resumed_from: str | None = None,
    ) -> None:
        with self._db(write=True) as con:
            con.execute(
                "INSERT INTO executions (id, workflow, input, status, started_at, resumed_from, host, pid,"
                " heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (execution_id, workflow, _dumps(input), RUNNING, iso(started_at), resumed_from,
                 socket.gethostname(), os.getpid(), iso(started_at)),
            )

    def finish_execution(
        self, execution_id: str, status: str, ended_at: dt.datetime, error: str | None = None,
        cause: str | None = None,
    ) -> None:
        with self._db(write=True) as con:
            con.execute(
                "UPDATE executions SET status = ?, ended_at = ?, error = ?, cause = ? WHERE id = ?",
                (status, iso(ended_at), redact(error), redact(cause), execution_id),
            )
            if status == ABORTED:
                con.execute(
                    "UPDATE step_runs SET status = ?, ended_at = ? WHERE execution_id = ? AND status = ?",
                    (ABORTED, iso(ended_at), execution_id, RUNNING),
                )

    def heartbeat(self, execution_id: str, at: dt.datetime) -> None:
        with self._db(write=True) as con:
            con.execute(_BEAT, (iso(at), execution_id))

    def execution(self, execution_id: str) -> Execution:
        """The execution with this id, or the only one whose id starts with it."""
        with self._db() as con:
            rows = con.execute("SELECT * FROM executions WHERE id = ?", (execution_id,)).fetchall()
            if not rows:
                pattern = execution_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                rows = con.execute(
                    "SELECT * FROM executions WHERE id LIKE ? ESCAPE '\\' LIMIT 2", (pattern,)
                ).fetchall()
            if len(rows) != 1:
                raise ExecutionNotFoundError(
                    f"{'no' if not rows else 'more than one'} execution matches {execution_id!r}",
                    hint="`retail-etl runs list` shows the executions",
                )
            execution = _execution(rows[0])
            execution.steps = [
                _step_run(r) for r in con.execute(
                    "SELECT * FROM step_runs WHERE execution_id = ? ORDER BY rowid", (execution.id,)
                )
            ]
        return execution

    def executions(
        self, *, limit: int = 20, status: str | None = None, workflow: str | None = None
    ) -> list[Execution]:
        """The newest executions first (without their steps)."""
        where, args = [], []
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if workflow is not None:
            where.append("workflow = ?")
            args.append(workflow)
        sql = "SELECT * FROM executions" + (" WHERE " + " AND ".join(where) if where else "")
        with self._db() as con:
            return [_execution(r) for r in con.execute(f"{sql} ORDER BY started_at DESC, rowid DESC LIMIT ?",
                                                       (*args, limit))]

    def recover_stale(self, now: dt.datetime | None = None, heartbeat_timeout: float | None = None) -> list[str]:
        """Mark RUNNING executions whose process is gone ABORTED; returns their ids.

        An execution is stale when it was started on this host by a process that no longer exists, or
        (with ``heartbeat_timeout``) when its heartbeat is older than that many seconds.
        """
        now = (now or utcnow()).astimezone(dt.UTC)
        host = socket.gethostname()
        with self._db() as con:
            rows = con.execute("SELECT id, host, pid, heartbeat_at FROM executions WHERE status = ?", (RUNNING,))
            stale: dict[str, str] = {}
            for row in rows.fetchall():
                beat = dt.datetime.fromisoformat(row["heartbeat_at"])
                if row["host"] == host and not _pid_alive(row["pid"]):
                    stale[row["id"]] = f"process {row['pid']} on {host} is gone"
                elif heartbeat_timeout is not None and (now - beat).total_seconds() > heartbeat_timeout:
                    stale[row["id"]] = f"no heartbeat from {row['host']} since {row['heartbeat_at']}"
        for execution_id, cause in stale.items():
            self.finish_execution(execution_id, ABORTED, now, error="ProcessGone", cause=cause)
            self.add_event(execution_id, "ExecutionAborted", now, details={"cause": cause})
        return list(stale)

    # -- step attempts ----------------------------------------------------------------------------

    def start_step(
        self, execution_id: str, step: str, attempt: int, started_at: dt.datetime, delay_before_s: float = 0.0
    ) -> None:
        with self._db(write=True) as con:
            con.execute(
                "INSERT INTO step_runs (execution_id, step, attempt, status, started_at, delay_before_s)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (execution_id, step, attempt, RUNNING, iso(started_at), delay_before_s),
            )

    def finish_step(
        self, execution_id: str, step: str, attempt: int, status: str, ended_at: dt.datetime, duration_s: float,
        *, rows: tuple[int, int, int] | None = None, details: dict[str, Any] | None = None,
        error: str | None = None, cause: str | None = None,
    ) -> None:
        rows_in, rows_out, rows_quarantined = rows or (None, None, None)
        with self._db(write=True) as con:
            con.execute(
                "UPDATE step_runs SET status = ?, ended_at = ?, duration_s = ?, rows_in = ?, rows_out = ?,"
                " rows_quarantined = ?, error = ?, cause = ?, details = ?"
                " WHERE execution_id = ? AND step = ? AND attempt = ?",
                (status, iso(ended_at), duration_s, rows_in, rows_out, rows_quarantined,
                 redact(error), redact(cause), _dumps(details or {}), execution_id, step, attempt),
            )

    def skip_step(self, execution_id: str, done: StepRun, at: dt.datetime) -> None:
        """Record a step that the resumed execution had completed, with its rows and details."""
        with self._db(write=True) as con:
            con.execute(
                "INSERT INTO step_runs (execution_id, step, attempt, status, started_at, ended_at, duration_s,"
                " rows_in, rows_out, rows_quarantined, details) VALUES (?, ?, 0, ?, ?, ?, 0, ?, ?, ?, ?)",
                (execution_id, done.step, SKIPPED, iso(at), iso(at), done.rows_in, done.rows_out,
                 done.rows_quarantined, _dumps(done.details)),
            )

    # -- events -----------------------------------------------------------------------------------

    def add_event(
        self, execution_id: str, type: str, time: dt.datetime, step: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Append to the execution's history; returns the event's sequence number (1, 2, ...)."""
        with self._db(write=True) as con:
            (seq,) = con.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE execution_id = ?", (execution_id,)
            ).fetchone()
            con.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
                (execution_id, seq, iso(time), type, step, _dumps(details or {})),
            )
            con.execute(_BEAT, (iso(time), execution_id))
        return seq

    def events(self, execution_id: str) -> list[Event]:
        with self._db() as con:
            return [
                Event(r["seq"], r["time"], r["type"], r["step"], json.loads(r["details"]))
                for r in con.execute("SELECT * FROM events WHERE execution_id = ? ORDER BY seq", (execution_id,))
            ]

    # -- circuit breaker --------------------------------------------------------------------------

    def circuit(self, workflow: str) -> dict[str, Any] | None:
        with self._db() as con:
            row = con.execute("SELECT * FROM workflow_circuit WHERE workflow = ?", (workflow,)).fetchone()
        return dict(row) if row else None

    def save_circuit(self, workflow: str, **fields: Any) -> None:
        """Replace the circuit row of ``workflow`` (columns as in ``workflow_circuit``)."""
        row = {"state": "CLOSED", "failures": 0, "opened_at": None, "last_error": None, "last_execution": None,
               "trial_execution": None, **fields}
        with self._db(write=True) as con:
            con.execute(
                "INSERT OR REPLACE INTO workflow_circuit VALUES (?, ?, ?, ?, ?, ?, ?)",
                (workflow, row["state"], row["failures"], row["opened_at"], redact(row["last_error"]),
                 row["last_execution"], row["trial_execution"]),
            )

    # -- notification de-duplication --------------------------------------------------------------

    def alert_last_sent(self, key: tuple[str, str, str, str]) -> dt.datetime | None:
        with self._db() as con:
            row = con.execute(
                "SELECT last_sent_at FROM notification_log"
                " WHERE kind = ? AND job = ? AND rule = ? AND partition = ?", key,
            ).fetchone()
        return parse_time(row[0]) if row else None

    def alert_sent(self, key: tuple[str, str, str, str], at: dt.datetime) -> None:
        with self._db(write=True) as con:
            con.execute(
                "INSERT INTO notification_log VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (kind, job, rule, partition)"
                " DO UPDATE SET last_sent_at = excluded.last_sent_at, suppressed = 0",
                (*key, iso(at)),
            )

    def alert_suppressed(self, key: tuple[str, str, str, str]) -> None:
        with self._db(write=True) as con:
            con.execute(
                "UPDATE notification_log SET suppressed = suppressed + 1"
                " WHERE kind = ? AND job = ? AND rule = ? AND partition = ?",
                key,
            )

    def forget_alerts(self, kind: str, job: str) -> None:
        """Re-arm alerts of ``kind`` for ``job``: the next one is sent even within the window."""
        with self._db(write=True) as con:
            con.execute("DELETE FROM notification_log WHERE kind = ? AND job = ?", (kind, job))


def _dumps(value: Any) -> str:
    return json.dumps(redact(value), default=str, ensure_ascii=False, sort_keys=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _execution(row: sqlite3.Row) -> Execution:
    return Execution(
        id=row["id"], workflow=row["workflow"], input=json.loads(row["input"]), status=row["status"],
        started_at=row["started_at"], ended_at=row["ended_at"], error=row["error"], cause=row["cause"],
        resumed_from=row["resumed_from"], host=row["host"], pid=row["pid"], heartbeat_at=row["heartbeat_at"],
    )


def _step_run(row: sqlite3.Row) -> StepRun:
    return StepRun(
        step=row["step"], attempt=row["attempt"], status=row["status"], started_at=row["started_at"],
        ended_at=row["ended_at"], duration_s=row["duration_s"], delay_before_s=row["delay_before_s"],
        rows_in=row["rows_in"], rows_out=row["rows_out"], rows_quarantined=row["rows_quarantined"],
        error=row["error"], cause=row["cause"], details=json.loads(row["details"] or "{}"),
    )
