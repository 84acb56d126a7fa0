"""``retail-etl catalog``: the tables of the lake, their schemas and snapshots."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from retail_etl.lake.catalog import RUN_ID_PROPERTY

app = typer.Typer(help="List and inspect the lake's Iceberg tables.", no_args_is_help=True)
console = Console()

ConfigOption = Annotated[
    Optional[Path],  # noqa: UP007 - typer needs Optional
    typer.Option("--config", "-c", help="Path to retail-etl.yaml."),
]


def _lake(config: Path | None):
    from retail_etl.config.loader import load_config
    from retail_etl.pipeline import Lake

    return Lake(load_config(config))


@app.command("list")
def list_tables(config: ConfigOption = None) -> None:
    """Tables with their zone, row count, data files and snapshots."""
    lake = _lake(config)
    table = Table("table", "zone", "rows", "files", "snapshots")
    for name in lake.catalog.tables():
        info = lake.catalog.info(name)
        table.add_row(info.name, info.zone, f"{info.rows:,}", str(info.files), str(info.snapshots))
    console.print(table)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Table name, with or without the namespace.")],
    config: ConfigOption = None,
) -> None:
    """Schema, partition spec, row count and snapshots (with the run that made each)."""
    from retail_etl.errors import LakeError

    lake = _lake(config)
    short = name.split(".")[-1]
    info = lake.catalog.info(short)
    table = lake.catalog.load(short)
    if table is None:  # pragma: no cover - info() raised already
        raise LakeError(f"no table {name}")
    console.print(f"[bold]{info.name}[/bold]  zone: {info.zone}  location: {info.location}")
    console.print(f"rows: {info.rows:,}  data files: {info.files}")
    schema = Table("id", "column", "type", "required", title="schema")
    for field in table.schema().fields:
        schema.add_row(str(field.field_id), field.name, str(field.field_type), "yes" if field.required else "no")
    console.print(schema)
    spec = table.spec()
    parts = ", ".join(f"{f.name} ({f.transform})" for f in spec.fields) or "unpartitioned"
    console.print(f"partitioned by: {parts}")
    snaps = Table("snapshot", "committed at (UTC)", "operation", "run", "added rows", "deleted rows", "total rows",
                  title="snapshots")
    for snap in table.snapshots():
        props = snap.summary.additional_properties if snap.summary else {}
        when = dt.datetime.fromtimestamp(snap.timestamp_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        snaps.add_row(str(snap.snapshot_id), when, str(snap.summary.operation.value if snap.summary else ""),
                      props.get(RUN_ID_PROPERTY, ""), props.get("added-records", "0"),
                      props.get("deleted-records", "0"), props.get("total-records", ""))
    console.print(snaps)
