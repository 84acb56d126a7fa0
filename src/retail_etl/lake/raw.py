"""The raw zone: input files copied unchanged, checksummed, organised by source and ingest date.

Layout: ``raw/<source>/ingest_date=YYYY-MM-DD/<file name>``, plus an append-only manifest
``raw/<source>/_manifest.jsonl`` with one entry per ingested file (name, sha256, size, time).
Raw files are never modified: a changed file with a name already used that day is stored
under a name carrying its hash. A file is identified for replacement by its *name*: a new
version of ``sales_2024-01.csv`` replaces the rows the old version produced.

A raw copy is read-only and no more readable than its source: it keeps the source's read bits,
limited by the process umask (see :func:`raw_mode`). A symbolic link is refused unless the
caller asks to follow it, so a link planted among the inputs cannot pull an arbitrary file
into the lake.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from retail_etl.errors import SourceError
from retail_etl.lake.storage import Storage, file_sha256

MANIFEST = "_manifest.jsonl"
NAME_MAX = 255  # bytes in a file name, on the common file systems


def raw_mode(source_mode: int, umask: int) -> int:
    """Permission bits of a raw copy of a file with mode ``source_mode``: the source's read bits
    limited by ``umask``; never write or execute; the lake's owner can always read it."""
    return (stat.S_IMODE(source_mode) & 0o444 & ~umask) | stat.S_IRUSR


def process_umask() -> int:
    """The process umask, read without changing it where the system shows it (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # Elsewhere it can only be read by setting it: set the strictest value for that instant.
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def versioned_name(name: str, digest: str, limit: int = NAME_MAX) -> str:
    """``name`` with ``digest``'s first 12 characters before its suffix (``sales.<hash>.csv``), the
    stem shortened if needed so that the name stays within ``limit`` bytes of UTF-8."""
    path = Path(name)
    suffix = f".{digest[:12]}{path.suffix}"
    room = limit - len(suffix.encode())
    stem = path.stem.encode()[:room].decode("utf-8", errors="ignore")
    return stem + suffix


def discover(base: Path, pattern: str, *, source: str, follow_symlinks: bool = False) -> list[Path]:
    """Files matching the glob ``pattern`` (relative to ``base`` unless absolute), in name order.

    Directories are not files and are left out. Unless ``follow_symlinks``, a match that is a
    symbolic link, or lies in a folder reached through one, is a :class:`SourceError`: a link
    planted among the inputs (``data/x -> /home``, with ``data/*/*.csv``) cannot pull files in
    (``**`` never descends into a linked folder).
    Links among the folders the pattern names literally (``/mnt/extracts`` in
    ``/mnt/extracts/*.csv``) are the configuration's own choice and are followed.
    """
    parts = Path(pattern).parts
    literal = 0
    while literal < len(parts) - 1 and not any(ch in parts[literal] for ch in "*?["):
        literal += 1
    root = Path(base, *parts[:literal])
    found = sorted(p for p in root.glob(str(Path(*parts[literal:]))) if p.is_symlink() or p.is_file())
    if not follow_symlinks:
        for path in found:
            link = _first_link(path, root)
            if link is not None:
                _refuse_symlink(link, source)
    return found


def _first_link(path: Path, root: Path) -> Path | None:
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            return current
    return None


def _refuse_symlink(file: Path, source: str) -> None:
    try:
        target = os.readlink(file)
    except OSError:
        target = "?"
    raise SourceError(
        f"is a symbolic link (to {target}): not ingested",
        path=str(file),
        hint=f"copy the file it points to, pass --follow-symlinks to `retail-etl ingest`, or set "
             f"`follow_symlinks: true` on source {source!r} in retail-etl.yaml",
    )


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

    def ingest(
        self, source: str, files: Iterable[Path], *, today: dt.date | None = None, follow_symlinks: bool = False
    ) -> list[RawFile]:
        """Copy ``files`` into the raw zone; returns the versions that are new (same name and content: skipped).

        A symbolic link is a :class:`SourceError` unless ``follow_symlinks``; followed, the copy
        holds the content of the file it points to, under the link's name.
        """
        files = [Path(f) for f in files]
        if not follow_symlinks:
            for file in files:
                if file.is_symlink():
                    _refuse_symlink(file, source)
        known = self.manifest(source)
        by_origin = {(f.origin, f.size, f.origin_mtime_ns): f for f in known}
        seen = {(f.name, f.sha256) for f in known}
        added: list[RawFile] = []
        umask = process_umask()
        for file in files:
            if file.is_dir():
                raise SourceError("is a folder, not a file", path=str(file),
                                  hint="name the files in it, e.g. folder/*.csv")
            if not file.is_file():
                raise SourceError("no such file", path=str(file), hint="check the path or the source's `path` glob")
            info = file.stat()
            origin = str(file.resolve())
            cached = by_origin.get((origin, info.st_size, info.st_mtime_ns))
            if cached is not None and cached.name == file.name:
                continue  # unchanged since last ingested: skip hashing
            digest = file_sha256(file)
            if (file.name, digest) in seen:
                continue
            entry = self._store(source, file, digest, info, today or dt.datetime.now(dt.UTC).date(), umask)
            self._append(source, entry)
            seen.add((entry.name, digest))
            added.append(entry)
        return added

    def _store(
        self, source: str, file: Path, digest: str, info: os.stat_result, day: dt.date, umask: int
    ) -> RawFile:
        folder = f"raw/{source}/ingest_date={day.isoformat()}"
        rel = f"{folder}/{file.name}"
        existing = self.storage.sha256(rel)
        if existing is not None and existing != digest:
            rel = f"{folder}/{versioned_name(file.name, digest)}"
            existing = self.storage.sha256(rel)
        if existing is None:
            self.storage.put_file(file, rel, digest, raw_mode(info.st_mode, umask))
        now = dt.datetime.now(dt.UTC)
        return RawFile(
            source=source,
            name=file.name,
            path=rel,
            sha256=digest,
            size=info.st_size,
            ingested_at=now.isoformat(timespec="seconds"),
            ingest_date=day.isoformat(),
            origin=str(file.resolve()),
            origin_mtime_ns=info.st_mtime_ns,
        )

    def _append(self, source: str, entry: RawFile) -> None:
        self.storage.append_line(f"raw/{source}/{MANIFEST}", json.dumps(asdict(entry), sort_keys=True) + "\n")

    def local_path(self, entry: RawFile) -> Path:
        """A local file with the content of ``entry`` (downloaded when the lake is remote)."""
        return self.storage.local_copy(entry.path)
