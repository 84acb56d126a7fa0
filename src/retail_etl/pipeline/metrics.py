"""The quality tables: ``quality_runs`` (one row per source and run) and ``quality_metrics`` (one row
per check, source and run), staged with the data of the step that measured them.

Figures are appended, not derived from a file or a date, so their commit replaces the figures of
every run still recorded in the step's ``commits_in_flight`` journal (see :mod:`retail_etl.lake.state`):
a run killed between its commits and the end of its step leaves figures that the run redoing the
step replaces, instead of counting them twice.

A source that fails its quality gate commits nothing but its figures: a ``quality_runs`` row with
status ``failed`` (and its checks in ``quality_metrics``), committed on their own and replacing only
that run's, so ``runs show`` and ``query`` can tell why it failed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pyarrow as pa
from pyiceberg.expressions import And, BooleanExpression, In

from retail_etl.pipeline.tableio import PROCESSED, StepIO

METRICS_TABLE = "quality_metrics"
RUNS_TABLE = "quality_runs"
#: A ``quality_runs`` row's status: the source passed its quality gate (its data was committed with
#: the figures) or failed it (the figures were committed on their own, nothing else).
PASSED, FAILED = "passed", "failed"

RUNS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("measured_at", pa.timestamp("us")), ("source", pa.string()), ("files", pa.int64()),
    ("rows_read", pa.int64()), ("rows_valid", pa.int64()), ("rows_quarantined", pa.int64()),
    ("rows_unparseable", pa.int64()), ("quarantine_rate", pa.float64()), ("seconds", pa.float64()),
    ("status", pa.string()),
])
METRICS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("measured_at", pa.timestamp("us")), ("source", pa.string()), ("rule_id", pa.string()),
    ("rule", pa.string()), ("severity", pa.string()), ("level", pa.string()), ("rows_checked", pa.int64()),
    ("rows_failed", pa.int64()), ("value", pa.float64()), ("passed", pa.bool_()),
])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def stage_runs(io: StepIO, rows: list[dict], replaced_runs: Sequence[str]) -> None:
    """Stage ``quality_runs`` rows (without run_id and measured_at), replacing those of ``replaced_runs``."""
    _stage(io, RUNS_TABLE, RUNS_SCHEMA, rows, [In("run_id", list(replaced_runs))])


def stage_checks(io: StepIO, rows: list[dict], levels: Sequence[str], replaced_runs: Sequence[str]) -> None:
    """Stage ``quality_metrics`` rows, replacing those of ``replaced_runs`` at the given check levels."""
    _stage(io, METRICS_TABLE, METRICS_SCHEMA, rows,
           [And(In("run_id", list(replaced_runs)), In("level", list(levels)))])


def _stage(io: StepIO, table: str, schema: pa.Schema, rows: list[dict], replace: list[BooleanExpression]) -> None:
    if not rows and io.catalog.load(table) is None:
        return  # nothing to add, nothing to replace
    now = _now()
    data = pa.Table.from_pylist([{"run_id": io.run_id, "measured_at": now, **r} for r in rows], schema=schema)
    io.stage(table, io.write_rows(table, data, PROCESSED, "metrics"), replace)
