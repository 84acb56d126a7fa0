"""``retail-etl bookmarks``: which raw files each source has processed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Show, reset or set the processed-file bookmarks of the sources.", no_args_is_help=True)
console = Console()

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
    from retail_etl.pipeline import Lake

    return Lake(load_config(config))


@app.command()
def show(source: Annotated[Optional[str], typer.Argument(help="Only this source.")] = None,  # noqa: UP007
         config: ConfigOption = None) -> None:
    """Every raw file version with its state: processed (by which run, when) or pending."""
    lake = _lake(config)
    names = [source] if source else sorted(lake.config.sources)
    table = Table("source", "file", "ingested", "sha256", "state", "run", "processed at")
    for name in names:
        lake.config.source(name)
        done = lake.state.bookmarks(name)
        for f in lake.raw.manifest(name):
            run, when = done.get(f.path, ("", ""))
            table.add_row(name, f.name, f.ingest_date, f.sha256[:12], "processed" if run else "pending", run, when)
    console.print(table)


@app.command()
def reset(source: SourceArg, files: FilesOption = None, config: ConfigOption = None) -> None:
    """Forget processed files: the next run re-derives them (replacing their earlier rows)."""
    lake = _lake(config)
    lake.config.source(source)
    with lake.lock():
        count = lake.state.reset_bookmarks(source, files)
    console.print(f"reset {count} bookmark(s) of {source}; the next run re-derives those files")


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
    console.print(f"marked {len(entries)} file version(s) of {source} as processed")
