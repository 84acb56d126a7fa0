"""Rendering results for the terminal (Rich) and for machines (CSV, JSON)."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
from typing import Any

import pyarrow as pa
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def print_table(console: Console, data: pa.Table, fmt: str) -> None:
    """Print an Arrow table as a Rich table, CSV (header + rows) or JSON (one array of objects)."""
    rows = data.to_pylist()
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(data.column_names)
        for row in rows:
            writer.writerow([_plain(v) for v in row.values()])
        console.file.write(buf.getvalue())
        return
    if fmt == "json":
        console.file.write(json.dumps(rows, default=_json_default, ensure_ascii=False) + "\n")
        return
    table = Table(*data.column_names, show_lines=False)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    console.print(table)
    console.print(f"{len(rows)} row(s)")


RUN_FORMATS = ("table", "csv", "json")
_RUN_COLUMNS = ("run_id", "step", "name", "files", "rows_in", "rows_out", "rows_quarantined", "seconds")


def print_run(console: Console, result: Any, fmt: str = "table", *, header: bool = True) -> None:
    """Summary of a pipeline run (a :class:`retail_etl.pipeline.RunResult`): per source rows, and
    quarantined rows by rule. ``csv``: one row per source of each step and per mart (the header
    line unless ``header`` is false); ``json``: one line, the typed results of the steps the
    execution ran."""
    if fmt == "json":
        console.file.write(json.dumps(result.to_dict(), default=_json_default, ensure_ascii=False) + "\n")
        return
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if header:
            writer.writerow(_RUN_COLUMNS)
        writer.writerows(_run_rows(result))
        console.file.write(buf.getvalue())
        return
    if result.resumed_from:
        done = f"; {', '.join(result.skipped)} done by it" if result.skipped else ""
        console.print(f"run {result.run_id} resumed {result.resumed_from}{done}", highlight=False)
    if not result.sources and result.transform is None and result.analytics is None:
        console.print(f"run {result.run_id}: no new input files; nothing to do ({result.seconds:.1f}s)")
        return
    if result.sources:
        summary = Table("source", "files", "rows read", "valid", "quarantined", "rate", "seconds",
                        title=f"run {result.run_id}")
        for s in result.sources:
            summary.add_row(escape(s.source), str(len(s.files)), f"{s.rows_read:,}", f"{s.rows_valid:,}",
                            f"{s.rows_quarantined:,}", f"{s.quarantine_rate:.2%}", f"{s.seconds:.2f}")
        console.print(summary)
    rules = Table("source", "rule", "severity", "rows failed", title="rows failing each check")
    for s in result.sources:
        for r in s.rules:
            if r.rows_failed or not r.passed:
                failed = f"{r.rows_failed:,}" if r.level != "dataset" else f"value {r.value:g}"
                rules.add_row(escape(s.source), escape(r.id), r.severity, failed)
    if rules.row_count:
        console.print(rules)
    if result.transform is not None:
        t = result.transform
        console.print(
            f"transform: {t.lines_in:,} validated lines on {len(t.dates)} sale date(s) ({_span(t.dates)}) -> "
            f"{t.enriched:,} enriched, {t.duplicates:,} duplicates and {t.unknown_products:,} unknown products "
            "quarantined", highlight=False,
        )
    if result.analytics is not None:
        a = result.analytics
        console.print(f"analytics: {len(a.marts)} marts refreshed for {len(a.dates)} sale date(s) "
                      f"({_span(a.dates)}), {sum(a.marts.values()):,} rows", highlight=False)
    for s in result.sources:
        for w in s.warnings:
            console.print(f"[yellow]warning[/yellow] {escape(s.source)}: {escape(w)}", highlight=False)
    console.print(f"done in {result.seconds:.1f}s")


def _span(dates: list) -> str:
    return f"{dates[0]} .. {dates[-1]}" if len(dates) > 1 else str(dates[0])


def _run_rows(result: Any) -> list[tuple]:
    rows: list[tuple] = [
        (result.run_id, "validate", s.source, len(s.files), s.rows_read, s.rows_valid, s.rows_quarantined,
         round(s.seconds, 3))
        for s in result.sources
    ]
    if result.transform is not None:
        rows += [(result.run_id, "transform", name, "", f.lines_in, f.enriched, f.duplicates + f.unknown_products, "")
                 for name, f in result.transform.sources.items()]
    if result.analytics is not None:
        rows += [(result.run_id, "analytics", mart, "", "", n, "", "") for mart, n in result.analytics.marts.items()]
    return rows


def _plain(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=_json_default)
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    return str(value)
