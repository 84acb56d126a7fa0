"""The raw zone: input files copied unchanged, checksummed, organised by source and ingest date.

Layout: ``raw/<source>/ingest_date=YYYY-MM-DD/<file name>``, plus an append-only manifest
``raw/<source>/_manifest.jsonl`` with one entry per ingested file (name, sha256, size, time).
Raw files are never modified: a changed file with a name already used that day is stored
under a name carrying its hash. A file is identified for replacement by its *name*: a new
version of ``sales_2024-01.csv`` replaces the rows the old version produced.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from retail_etl.errors import SourceError

MANIFEST = "_manifest.jsonl"
_CHUNK = 1 << 20


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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class RawZone:
    """Ingest into, and list, the raw zone under ``lake_root``."""

    def __init__(self, lake_root: Path) -> None:
        self.lake_root = Path(lake_root)
        self.root = self.lake_root / "raw"

    def manifest(self, source: str) -> list[RawFile]:
        """Every file version ingested for ``source``, in ingest order."""
        path = self.root / source / MANIFEST
        if not path.exists():
            return []
        out = []
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                # A line without its newline is an append cut short by a crash: not an entry.
                if line.endswith("\n") and line.strip():
                    out.append(RawFile(**json.loads(line)))
        return out

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
            digest = sha256_of(file)
            if (file.name, digest) in seen:
                continue
            entry = self._store(source, file, digest, stat, today or dt.datetime.now(dt.UTC).date())
            self._append(source, entry)
            seen.add((entry.name, digest))
            added.append(entry)
        return added

    def _store(self, source: str, file: Path, digest: str, stat: os.stat_result, day: dt.date) -> RawFile:
        folder = self.root / source / f"ingest_date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / file.name
        if target.exists() and sha256_of(target) != digest:
            target = folder / f"{file.stem}.{digest[:12]}{file.suffix}"
        if not target.exists():
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            shutil.copyfile(file, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            if sha256_of(tmp) != digest:
                tmp.unlink()
                raise SourceError("file changed while it was being ingested; ingest it again", path=str(file))
            os.replace(tmp, target)
            os.chmod(target, 0o444)
        now = dt.datetime.now(dt.UTC)
        return RawFile(
            source=source,
            name=file.name,
            path=target.relative_to(self.lake_root).as_posix(),
            sha256=digest,
            size=stat.st_size,
            ingested_at=now.isoformat(timespec="seconds"),
            ingest_date=day.isoformat(),
            origin=str(file.resolve()),
            origin_mtime_ns=stat.st_mtime_ns,
        )

    def _append(self, source: str, entry: RawFile) -> None:
        path = self.root / source / MANIFEST
        path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(asdict(entry), sort_keys=True) + "\n").encode("utf-8")
        with open(path, "ab+") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":  # drop the tail of an append cut short by a crash
                    fh.seek(0)
                    fh.truncate(fh.read().rfind(b"\n") + 1)
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def local_path(self, entry: RawFile) -> Path:
        return self.lake_root / entry.path
