"""``retail-etl bookmarks``: which raw files each source has processed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.text import Text

from retail_etl.cli.output import Column, FormatOption, check_format, print_listing, stdout_console

app = typer.Typer(help="Show, reset or set the processed-file bookmarks of the sources.", no_args_is_help=True)

ConfigOption = Annotated[
    Optional[Path],  # noqa: UP007 - typer needs Optional
    typer.Option("--config", "-c", help="Path to retail-etl.yaml."),
]
SourceArg = Annotated[str, typer.Argument(help="Source name declared in retail-etl.yaml.")]
FilesOption = Annotated[
    Optional[list[str]],  # noqa: UP007
    typer.Option("--file", "-f", help="A raw file name (repeatable); default: all of the source's files."),
]


def _lake(config: Path | None):
    from retail_etl.config.loader import load_config
    from retail_etl.lake.lake import Lake

    return Lake(load_config(config))


_COLUMNS = [Column("source"), Column("file"), Column("path"), Column("ingest_date", "ingested"),
            Column("sha256", show=lambda v: v[:12]), Column("state"), Column("run_id", "run", show=lambda v: v or ""),
            Column("processed_at", "processed at", show=lambda v: v or "")]


@app.command()
def show(source: Annotated[Optional[str], typer.Argument(help="Only this source.")] = None,  # noqa: UP007
         fmt: FormatOption = "table", config: ConfigOption = None) -> None:
    """Every raw file version with its state: processed (by which run, when) or pending.

    The table shows the first 12 characters of each sha256; CSV and JSON give it whole."""
    check_format(fmt)
    lake = _lake(config)
    names = [source] if source else sorted(lake.config.sources)
    records = []
    for name in names:
        lake.config.source(name)
        done = lake.state.bookmarks(name)
        for f in lake.raw.manifest(name):
            run, when = done.get(f.path, (None, None))
            records.append({"source": name, "file": f.name, "path": f.path, "ingest_date": f.ingest_date,
                            "sha256": f.sha256, "state": "processed" if run else "pending", "run_id": run or None,
                            "processed_at": when or None})
    columns = _COLUMNS if fmt != "table" else [c for c in _COLUMNS if c.key != "path"]
    print_listing(stdout_console(), columns, records, fmt, empty="no raw files yet")


@app.command()
def reset(source: SourceArg, files: FilesOption = None, config: ConfigOption = None) -> None:
    """Forget processed files: the next run re-derives them (replacing their earlier rows)."""
    lake = _lake(config)
    lake.config.source(source)
    with lake.lock():
        count = lake.state.reset_bookmarks(source, files)
    stdout_console().print(Text(f"reset {count} bookmark(s) of {source}; the next run re-derives those files"))


@app.command("set")
def set_(source: SourceArg, files: FilesOption = None, config: ConfigOption = None) -> None:
    """Mark raw files as processed without processing them (e.g. data loaded another way)."""
    lake = _lake(config)
    lake.config.source(source)
    entries = [f for f in lake.raw.manifest(source) if not files or f.name in files]
    unknown = sorted(set(files or ()) - {f.name for f in entries})
    if unknown:
        from retail_etl.errors import SourceError

        raise SourceError(f"not in the raw zone of {source}: {', '.join(unknown)}",
                          hint=f"`retail-etl bookmarks show {source}` lists its files")
    with lake.lock():
        lake.state.mark_processed(entries, run_id="manual")
    stdout_console().print(Text(f"marked {len(entries)} file version(s) of {source} as processed"))
