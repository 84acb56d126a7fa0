"""The lake of a configuration as one object: raw zone, catalog, state, the lock, and which
deliveries are still to be processed."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
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
            files = self.raw.ingest(name, self.discover(name, source), follow_symlinks=source.follow_symlinks,
                                    replace=source.deliveries == "replace")
            if files:
                added[name] = files
                say(f"ingested {len(files)} file(s) into raw/{name}")
        return added

    def pending(
        self, name: str, source: SourceConfig, ingest_date: dt.date | None = None, *, bookmarks: str = "enable"
    ) -> Pending:
        """The deliveries of ``name`` still to be processed (see :class:`Pending`).

        With ``bookmarks="disable"`` every delivery counts as unprocessed (a full re-derivation).
        """
        done = self.state.processed(name) if bookmarks != "disable" else set()
        return plan_deliveries(self.raw.manifest(name), source, done,
                               ingest_date.isoformat() if ingest_date is not None else None)


@dataclass(frozen=True)
class Pending:
    """A source's unprocessed deliveries: ``files`` to validate, ``superseded`` ones to mark
    processed without reading them (a later delivery replaces them), and for each file's delivery
    id the earlier deliveries whose rows it replaces."""

    files: list[RawFile] = field(default_factory=list)
    superseded: list[RawFile] = field(default_factory=list)
    replaces: dict[str, list[RawFile]] = field(default_factory=dict)


def plan_deliveries(
    manifest: Sequence[RawFile], source: SourceConfig, done: Collection[str], ingest_date: str | None
) -> Pending:
    """Which of ``manifest``'s deliveries (in delivery order) to validate, given the raw paths
    ``done`` already processed and an optional ingest date.

    By default deliveries accumulate. A delivery that replaces (``replace`` recorded with it, or
    ``deliveries: replace`` declared by the source) replaces the rows of the earlier deliveries of
    its name, and makes them superseded even when one is re-derived alone (a backfill of its
    ingest date). A products source is a full snapshot: its newest delivery replaces all earlier ones.
    """
    snapshot = source.entity == "products"
    replacing = [snapshot or source.deliveries == "replace" or f.replace for f in manifest]
    superseded: set[str] = set()
    replaced_later: set[str] = set()  # names with a replacing delivery after the current one
    for i in range(len(manifest) - 1, -1, -1):  # newest first
        f = manifest[i]
        if (snapshot and i < len(manifest) - 1) or f.name in replaced_later:
            superseded.add(f.delivery_id)
        if replacing[i]:
            replaced_later.add(f.name)
    todo = [f for f in manifest if f.path not in done and (ingest_date is None or f.ingest_date == ingest_date)]
    files = [f for f in todo if f.delivery_id not in superseded]
    position = {f.delivery_id: i for i, f in enumerate(manifest)}
    replaces: dict[str, list[RawFile]] = {}
    for f in files:
        i = position[f.delivery_id]
        if replacing[i]:
            earlier = [e for e in manifest[:i] if snapshot or e.name == f.name]
            if earlier:
                replaces[f.delivery_id] = earlier
    return Pending(files, [f for f in todo if f.delivery_id in superseded], replaces)
