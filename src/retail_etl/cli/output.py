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


def print_run(console: Console, result: Any) -> None:
    """Summary of a pipeline run: per source rows, and quarantined rows by rule."""
    if not result.sources and result.transform is None:
        console.print(f"run {result.run_id}: no new input files; nothing to do ({result.seconds:.1f}s)")
        return
    summary = Table("source", "files", "rows read", "valid", "quarantined", "rate", "seconds",
                    title=f"run {result.run_id}")
    for s in result.sources:
        summary.add_row(s.source, str(len(s.files)), f"{s.rows_read:,}", f"{s.rows_valid:,}",
                        f"{s.rows_quarantined:,}", f"{s.quarantine_rate:.2%}", f"{s.seconds:.2f}")
    console.print(summary)
    rules = Table("source", "rule", "severity", "rows failed", title="rows failing each check")
    for s in result.sources:
        for r in s.rules:
            if r.rows_failed or not r.passed:
                failed = f"{r.rows_failed:,}" if r.level != "dataset" else f"value {r.value:g}"
                rules.add_row(s.source, r.id, r.severity, failed)
    if rules.row_count:
        console.print(rules)
    if result.transform is not None:
        t = result.transform
        dates = result.dates
        span = f"{dates[0]} .. {dates[-1]}" if len(dates) > 1 else str(dates[0])
        console.print(
            f"transform: {t.lines_in:,} validated lines on {len(dates)} sale date(s) ({span}) -> "
            f"{t.enriched:,} enriched, {t.duplicates:,} duplicates and {t.unknown_products:,} unknown products "
            "quarantined; analytics refreshed for those dates"
        )
    for s in result.sources:
        for w in s.warnings:
            console.print(f"[yellow]warning[/yellow] {s.source}: {w}", highlight=False)
    console.print(f"done in {result.seconds:.1f}s")


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
