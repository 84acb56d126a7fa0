"""``retail-etl catalog``: the tables of the lake, their schemas and snapshots."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.text import Text

from retail_etl.cli.output import (
    Column, FormatOption, check_format, print_fields, print_listing, stdout_console, wide, write_json,
)

app = typer.Typer(help="List and inspect the lake's Iceberg tables.", no_args_is_help=True)

ConfigOption = Annotated[
    Optional[Path],  # noqa: UP007 - typer needs Optional
    typer.Option("--config", "-c", help="Path to retail-etl.yaml."),
]
_TABLES = [Column("table"), Column("zone"), Column("rows", show=lambda v: f"{v:,}", right=True),
           Column("files", right=True), Column("snapshots", right=True)]
_SCHEMA = [Column("id", right=True), Column("column"), Column("type"),
           Column("required", show=lambda v: "yes" if v else "no")]
_SNAPSHOTS = [Column("snapshot_id", "snapshot"), Column("committed_at", "committed at (UTC)"),
              Column("operation"), Column("run_id", "run"), Column("added_rows", "added rows", right=True),
              Column("deleted_rows", "deleted rows", right=True), Column("total_rows", "total rows", right=True)]


def _catalog(config: Path | None):
    """The lake's catalog, opened read-only (None when the lake has none yet: nothing is created)."""
    from retail_etl.config.loader import load_config
    from retail_etl.lake.catalog import open_read_only
    from retail_etl.lake.storage import open_storage

    cfg = load_config(config)
    return open_read_only(open_storage(cfg), cfg.lake.namespace)


@app.command("list")
def list_tables(fmt: FormatOption = "table", config: ConfigOption = None) -> None:
    """Tables with their zone, row count, data files and snapshots."""
    check_format(fmt)
    catalog = _catalog(config)
    records = []
    for name in catalog.tables() if catalog else []:
        info = catalog.info(name)
        records.append({"table": info.name, "zone": info.zone, "rows": info.rows, "files": info.files,
                        "snapshots": info.snapshots})
    print_listing(stdout_console(), _TABLES, records, fmt, empty="no tables yet: `retail-etl run` creates them")


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Table name, with or without the namespace.")],
    fmt: FormatOption = "table",
    config: ConfigOption = None,
) -> None:
    """Schema, partition spec, row count and snapshots (with the run that made each).

    As JSON: one object with ``schema``, ``partitioned_by`` and ``snapshots``. As CSV: one line per
    snapshot."""
    from retail_etl.errors import LakeError
    from retail_etl.lake.catalog import RUN_ID_PROPERTY

    check_format(fmt)
    catalog = _catalog(config)
    short = name.split(".")[-1]
    table = catalog.load(short) if catalog else None
    if catalog is None or table is None:
        raise LakeError(f"no table {name}", hint="`retail-etl catalog list` shows the tables")
    info = catalog.info(short)
    schema = [{"id": f.field_id, "column": f.name, "type": str(f.field_type), "required": f.required}
              for f in table.schema().fields]
    parts = [{"column": f.name, "transform": str(f.transform)} for f in table.spec().fields]
    snapshots = [_snapshot(snap, RUN_ID_PROPERTY) for snap in table.snapshots()]
    console = stdout_console()
    if fmt == "json":
        write_json(console, {"table": info.name, "zone": info.zone, "location": info.location, "rows": info.rows,
                             "files": info.files, "partitioned_by": parts, "schema": schema,
                             "snapshots": snapshots})
        return
    if fmt == "csv":
        print_listing(console, _SNAPSHOTS, snapshots, "csv")
        return
    print_fields(console, [("table", info.name), ("zone", info.zone), ("location", info.location),
                           ("rows", f"{info.rows:,}"), ("data files", str(info.files))], width=11)
    print_listing(console, _SCHEMA, schema, "table", title="schema")
    spec = ", ".join(f"{p['column']} ({p['transform']})" for p in parts) or "unpartitioned"
    wide(console).print(Text(f"partitioned by: {spec}"))
    print_listing(console, _SNAPSHOTS, snapshots, "table", title="snapshots")


def _snapshot(snap: Any, run_property: str) -> dict[str, Any]:
    props = snap.summary.additional_properties if snap.summary else {}
    when = dt.datetime.fromtimestamp(snap.timestamp_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return {"snapshot_id": snap.snapshot_id, "committed_at": when,
            "operation": snap.summary.operation.value if snap.summary else None,
            "run_id": props.get(run_property), "added_rows": int(props.get("added-records", 0)),
            "deleted_rows": int(props.get("deleted-records", 0)),
            "total_rows": int(props["total-records"]) if "total-records" in props else None}
