r"""Rendering for the terminal (Rich) and for machines (CSV, JSON), showing every value verbatim.

Every listing command takes ``--format table|csv|json`` and follows the same conventions:

- ``table``: cells are plain text, never read as Rich markup or emoji codes; NULL is a dim ``∅`` and
  the empty string is empty; control characters are escaped (``\x1b``, ``\n``); nothing is cut:
  long cells fold on a terminal, and when the output is not a terminal there is no width limit.
- ``csv``: a header line of the keys, then one line per row; NULL is an empty field and the empty
  string is ``""`` (as DuckDB's and PostgreSQL's CSV writers do); control characters are escaped
  when the output is a terminal, written as they are otherwise.
- ``json``: an array of objects (one per row) or one object (a single item), with stable keys;
  NULL is ``null``, dates and times ISO-8601, decimals strings (exact), bytes an escaped string.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from retail_etl.redact import escape_control, escape_json_controls

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS = ("table", "csv", "json")
FormatOption = Annotated[str, typer.Option("--format", help="table (default), csv or json.")]
NULL = "\u2205"
#: The width of a console that is not a terminal: wide enough that no column is ever cut.
_UNLIMITED = 1_000_000


def check_format(value: str, option: str = "--format") -> str:
    """``value`` if it is one of :data:`FORMATS`, else a usage error (exit 2)."""
    if value not in FORMATS:
        raise typer.BadParameter(f"choose {', '.join(FORMATS)}", param_hint=option)
    return value


def stdout_console() -> Console:
    """The console commands print to: a terminal's own width, or no width limit when piped."""
    console = Console()
    return console if console.is_terminal else wide(console)


def wide(console: Console) -> Console:
    """``console`` itself on a terminal; elsewhere a console on the same file with no width limit."""
    if console.is_terminal:
        return console
    return Console(file=console.file, width=_UNLIMITED, no_color=True, highlight=False, emoji=False,
                   markup=False)


def plain(value: Any) -> str:
    """The text of a value as the CSV and table formats show it (before escaping); NULL is ``""``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in bytes(value))
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(json_value(value), ensure_ascii=False)
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    return str(value)


def cell(value: Any, style: str = "") -> Text:
    """A table cell showing ``value`` verbatim: plain text (no markup, no emoji codes), control
    characters escaped, NULL as a dim ``∅`` (distinct from the empty string)."""
    if value is None:
        return Text(NULL, style="dim")
    return Text(escape_control(plain(value)), style=style)


def json_value(value: Any) -> Any:
    """``value`` as JSON can hold it without loss (decimals and dates as strings)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return plain(value)


def new_table(*headers: str, title: str | None = None, right: Iterable[str] = ()) -> Table:
    """A table whose headers and title are plain text and whose columns fold rather than cut."""
    aligned = set(right)
    table = Table(title=Text(title) if title else None, title_justify="left", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False, collapse_padding=True)
    for header in headers:
        justify = "right" if header in aligned else "left"
        table.add_column(Text(escape_control(header)), overflow="fold", justify=justify)
    return table


@dataclasses.dataclass(frozen=True)
class Column:
    """One column of a listing: its JSON/CSV ``key``, the table's ``header`` and how the table
    shows a value (``show``) and styles it (``style``); CSV and JSON always get the value itself."""

    key: str
    header: str | None = None
    show: Callable[[Any], Any] | None = None
    style: Callable[[Any], str] | None = None
    right: bool = False


def print_listing(
    console: Console, columns: Sequence[Column], records: Sequence[Mapping[str, Any]], fmt: str, *,
    title: str | None = None, empty: str | None = None,
) -> None:
    """Print ``records`` as a table, CSV or a JSON array (see the module's conventions)."""
    if fmt == "json":
        write_json(console, [{c.key: json_value(r.get(c.key)) for c in columns} for r in records])
        return
    if fmt == "csv":
        write_csv(console, [c.key for c in columns], ([r.get(c.key) for c in columns] for r in records))
        return
    if not records and empty is not None:
        console.print(Text(empty))
        return
    table = new_table(*(c.header or c.key for c in columns), title=title,
                      right=[c.header or c.key for c in columns if c.right])
    for r in records:
        table.add_row(*(_shown(c, r.get(c.key)) for c in columns))
    wide(console).print(table)


def _shown(column: Column, value: Any) -> Text:
    shown = column.show(value) if column.show else value
    return cell(shown, column.style(value) if column.style else "")


def print_fields(console: Console, fields: Sequence[tuple[str, Any]], *, width: int = 15,
                 styles: Mapping[str, str] | None = None) -> None:
    """``label  value`` lines (one item's fields), values shown as :func:`cell` shows them."""
    out = wide(console)
    for label, value in fields:
        out.print(Text.assemble((f"{label:<{width}}", "bold"), cell(value, (styles or {}).get(label, ""))))


def write_json(console: Console, document: Any) -> None:
    """One JSON document on its own line (DEL and C1 controls escaped too, so it is safe on a terminal)."""
    console.file.write(escape_json_controls(json.dumps(document, ensure_ascii=False)) + "\n")


def write_csv(console: Console, header: Sequence[str] | None, rows: Iterable[Sequence[Any]]) -> None:
    """CSV with NULL as an empty field and the empty string as ``""`` (no header line for ``None``)."""
    escape = console.is_terminal
    lines = [",".join(_csv_field(h, escape) for h in header)] if header is not None else []
    lines += [",".join(_csv_field(None if v is None else plain(v), escape) for v in row) for row in rows]
    console.file.write("\n".join(lines) + "\n")


def _csv_field(text: str | None, escape: bool) -> str:
    if text is None:
        return ""
    if escape:
        text = escape_control(text)
    if text == "" or any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def print_table(console: Console, data: pa.Table, fmt: str) -> None:
    """Print a query's result (an Arrow table) as a table, CSV or a JSON array of objects; a name
    that occurs twice among the columns stays twice in each object."""
    names = data.column_names
    columns = [data.column(i).to_pylist() for i in range(data.num_columns)]
    rows = list(zip(*columns, strict=True)) if columns else []
    if fmt == "csv":
        write_csv(console, names, rows)
        return
    if fmt == "json":
        objects = ("{" + ", ".join(f"{json.dumps(n, ensure_ascii=False)}: "
                                   f"{json.dumps(json_value(v), ensure_ascii=False)}" for n, v in zip(names, row))
                   + "}" for row in rows)
        console.file.write(escape_json_controls("[" + ", ".join(objects) + "]") + "\n")
        return
    table = Table(show_lines=False)
    for name in names:
        table.add_column(Text(escape_control(name)), overflow="fold")
    for row in rows:
        table.add_row(*(cell(v) for v in row))
    out = wide(console)
    out.print(table)
    out.print(Text(f"{len(rows)} row(s)"))


RUN_FORMATS = ("table", "csv", "json")
_RUN_COLUMNS = ("run_id", "step", "name", "files", "rows_in", "rows_out", "rows_quarantined", "seconds")


def print_run(console: Console, result: Any, fmt: str = "table", *, header: bool = True) -> None:
    """Summary of a pipeline run (a :class:`retail_etl.pipeline.RunResult`): per source rows, and
    quarantined rows by rule. ``csv``: one row per source of each step and per mart (the header
    line unless ``header`` is false); ``json``: one line, the typed results of the steps the
    execution ran."""
    if fmt == "json":
        write_json(console, json_value(result.to_dict()))
        return
    if fmt == "csv":
        write_csv(console, _RUN_COLUMNS if header else None, _run_rows(result))
        return
    out = wide(console)
    if result.resumed_from:
        done = f"; {', '.join(result.skipped)} done by it" if result.skipped else ""
        out.print(Text(f"run {result.run_id} resumed {result.resumed_from}{done}"))
    if not result.sources and result.transform is None and result.analytics is None:
        _print_notices(out, result)
        out.print(Text(f"run {result.run_id}: no new input files; nothing to do ({result.seconds:.1f}s)"))
        return
    if result.sources:
        columns = ("source", "files", "rows read", "valid", "quarantined", "rate", "seconds")
        summary = new_table(*columns, title=f"run {result.run_id}", right=columns[1:])
        for s in result.sources:
            summary.add_row(cell(s.source), *(cell(v) for v in (
                str(len(s.files)), f"{s.rows_read:,}", f"{s.rows_valid:,}", f"{s.rows_quarantined:,}",
                f"{s.quarantine_rate:.2%}", f"{s.seconds:.2f}")))
        out.print(summary)
    rules = new_table("source", "rule", "severity", "rows failed", title="rows failing each check", right=["rows failed"])
    for s in result.sources:
        for r in s.rules:
            if r.rows_failed or not r.passed:
                failed = f"{r.rows_failed:,}" if r.level != "dataset" else f"value {r.value:g}"
                rules.add_row(cell(s.source), cell(r.id), cell(r.severity), cell(failed))
    if rules.row_count:
        out.print(rules)
    for r in result.replacements:
        out.print(Text.assemble("replaced: ", cell(f"{r.source}/{r.file}"), f" (delivery {r.delivery_id} replaces "
                                f"{len(r.replaced)} earlier): {r.rows_removed:,} rows removed, "
                                f"{r.rows_added:,} rows added"))
    if result.transform is not None:
        t = result.transform
        out.print(Text(
            f"transform: {t.lines_in:,} validated lines on {len(t.dates)} sale date(s) ({_span(t.dates)}) -> "
            f"{t.enriched:,} enriched, {t.duplicates:,} duplicates and {t.unknown_products:,} unknown products "
            "quarantined"))
    if result.analytics is not None:
        a = result.analytics
        out.print(Text(f"analytics: {len(a.marts)} marts refreshed for {len(a.dates)} sale date(s) "
                       f"({_span(a.dates)}), {sum(a.marts.values()):,} rows"))
    for s in result.sources:
        for w in s.warnings:
            out.print(Text.assemble(("warning", "yellow"), " ", cell(f"{s.source}: {w}")))
    _print_notices(out, result)
    out.print(Text(f"done in {result.seconds:.1f}s"))


def _print_notices(out: Console, result: Any) -> None:
    """Per source, what the run found amiss without figures (no new file, a late delivery…)."""
    for source, notices in sorted(getattr(result, "notices", {}).items()):
        for notice in notices:
            out.print(Text.assemble(("warning", "yellow"), " ", cell(f"{source}: {notice}")))


def _span(dates: list) -> str:
    return f"{dates[0]} .. {dates[-1]}" if len(dates) > 1 else str(dates[0])


def _run_rows(result: Any) -> list[tuple]:
    """The csv summary's rows; a figure a step does not have is NULL (an empty field)."""
    rows: list[tuple] = [
        (result.run_id, "validate", s.source, len(s.files), s.rows_read, s.rows_valid, s.rows_quarantined,
         round(s.seconds, 3))
        for s in result.sources
    ]
    if result.transform is not None:
        rows += [(result.run_id, "transform", name, None, f.lines_in, f.enriched, f.duplicates + f.unknown_products,
                  None) for name, f in result.transform.sources.items()]
    if result.analytics is not None:
        rows += [(result.run_id, "analytics", mart, None, None, n, None, None)
                 for mart, n in result.analytics.marts.items()]
    return rows
