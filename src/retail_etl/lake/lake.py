"""The lake of a configuration as one object: raw zone, catalog, state, the lock, and which raw
files are still to be processed."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

from retail_etl.config.model import Config, SourceConfig
from retail_etl.lake.catalog import Catalog
from retail_etl.lake.raw import RawFile, RawZone, discover
from retail_etl.lake.state import StateStore
from retail_etl.lake.storage import open_storage

Say = Callable[[str], None]


class Lake:
    """The lake of a configuration: raw zone, catalog and state."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.storage = open_storage(config)
        self.raw = RawZone(self.storage)
        self.catalog = Catalog(self.storage, config.lake.namespace)
        self.state = StateStore(self.storage)

    @contextlib.contextmanager
    def lock(self, *, wait: bool = False) -> Iterator[None]:
        """Hold the lake's exclusive lock, with the catalog and state read afresh under it."""
        with self.storage.lock(wait=wait):
            self.catalog.reset()
            yield

    def discover(self, name: str, source: SourceConfig) -> list[Path]:
        """Files matching the source's ``path`` glob (relative to the project folder); symbolic links
        are refused unless the source follows them."""
        return discover(Path(self.config.project_dir), source.path, source=name, follow_symlinks=source.follow_symlinks)

    def ingest_new(self, say: Say) -> dict[str, list[RawFile]]:
        """Copy new files matching each source's glob into the raw zone."""
        added = {}
        for name, source in self.config.sources.items():
            files = self.raw.ingest(name, self.discover(name, source), follow_symlinks=source.follow_symlinks)
            if files:
                added[name] = files
                say(f"ingested {len(files)} file(s) into raw/{name}")
        return added

    def pending(
        self, name: str, source: SourceConfig, ingest_date: dt.date | None = None, *, bookmarks: str = "enable"
    ) -> tuple[list[RawFile], list[RawFile]]:
        """(to process, superseded): the newest version of each unprocessed file name.

        With ``bookmarks="disable"`` every raw file counts as unprocessed (a full re-derivation).
        """
        done = self.state.processed(name) if bookmarks != "disable" else set()
        todo = [f for f in self.raw.manifest(name) if f.path not in done]
        if ingest_date is not None:
            todo = [f for f in todo if f.ingest_date == ingest_date.isoformat()]
        latest: dict[str, RawFile] = {}
        for f in todo:
            latest.pop(f.name, None)
            latest[f.name] = f
        if source.entity == "products" and latest:
            # The product master is a full snapshot: only the newest file counts.
            newest = list(latest.values())[-1]
            latest = {newest.name: newest}
        keep = list(latest.values())
        return keep, [f for f in todo if f not in keep]
