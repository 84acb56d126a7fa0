"""The raw zone: input files copied unchanged, checksummed, organised by source and ingest date.

Layout: ``raw/<source>/ingest_date=YYYY-MM-DD/<file name>``, plus an append-only manifest
``raw/<source>/_manifest.jsonl`` with one entry per ingested file (name, sha256, size, time).
Raw files are never modified: a changed file with a name already used that day is stored
under a name carrying its hash. A file is identified for replacement by its *name*: a new
version of ``sales_2024-01.csv`` replaces the rows the old version produced.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from retail_etl.errors import SourceError
from retail_etl.lake.storage import Storage, file_sha256

MANIFEST = "_manifest.jsonl"


@dataclass(frozen=True)
class RawFile:
    """One ingested file version."""

    source: str
    name: str  # the original file name: the identity used for replacement
    path: str  # location in the raw zone, relative to the lake root
    sha256: str
    size: int
    ingested_at: str  # ISO timestamp, UTC
    ingest_date: str  # YYYY-MM-DD
    origin: str = ""  # where it was copied from
    origin_mtime_ns: int = 0

    @property
    def key(self) -> str:
        """Identity of this version: the raw path (unique, content-addressed when needed)."""
        return self.path


class RawZone:
    """Ingest into, and list, the raw zone of a lake's storage."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def manifest(self, source: str) -> list[RawFile]:
        """Every file version ingested for ``source``, in ingest order."""
        text = self.storage.read_text(f"raw/{source}/{MANIFEST}") or ""
        # A last line without its newline is an append cut short by a crash: not an entry.
        return [RawFile(**json.loads(line)) for line in text.splitlines(keepends=True)
                if line.endswith("\n") and line.strip()]

    def ingest(self, source: str, files: Iterable[Path], *, today: dt.date | None = None) -> list[RawFile]:
        """Copy ``files`` into the raw zone; returns the versions that are new (same name and content: skipped)."""
        known = self.manifest(source)
        by_origin = {(f.origin, f.size, f.origin_mtime_ns): f for f in known}
        seen = {(f.name, f.sha256) for f in known}
        added: list[RawFile] = []
        for file in files:
            file = Path(file)
            if not file.is_file():
                raise SourceError("no such file", path=str(file), hint="check the path or the source's `path` glob")
            stat = file.stat()
            origin = str(file.resolve())
            cached = by_origin.get((origin, stat.st_size, stat.st_mtime_ns))
            if cached is not None and cached.name == file.name:
                continue  # unchanged since last ingested: skip hashing
            digest = file_sha256(file)
            if (file.name, digest) in seen:
                continue
            entry = self._store(source, file, digest, stat, today or dt.datetime.now(dt.UTC).date())
            self._append(source, entry)
            seen.add((entry.name, digest))
            added.append(entry)
        return added

    def _store(self, source: str, file: Path, digest: str, stat: os.stat_result, day: dt.date) -> RawFile:
        folder = f"raw/{source}/ingest_date={day.isoformat()}"
        rel = f"{folder}/{file.name}"
        existing = self.storage.sha256(rel)
        if existing is not None and existing != digest:
            rel = f"{folder}/{file.stem}.{digest[:12]}{file.suffix}"
            existing = self.storage.sha256(rel)
        if existing is None:
            self.storage.put_file(file, rel, digest)
        now = dt.datetime.now(dt.UTC)
        return RawFile(
            source=source,
            name=file.name,
            path=rel,
            sha256=digest,
            size=stat.st_size,
            ingested_at=now.isoformat(timespec="seconds"),
            ingest_date=day.isoformat(),
            origin=str(file.resolve()),
            origin_mtime_ns=stat.st_mtime_ns,
        )

    def _append(self, source: str, entry: RawFile) -> None:
        self.storage.append_line(f"raw/{source}/{MANIFEST}", json.dumps(asdict(entry), sort_keys=True) + "\n")

    def local_path(self, entry: RawFile) -> Path:
        """A local file with the content of ``entry`` (downloaded when the lake is remote)."""
        return self.storage.local_copy(entry.path)
