"""The raw zone: input files copied unchanged, checksummed, organised by source and ingest date.

Layout: ``raw/<source>/ingest_date=YYYY-MM-DD/<file name>``, plus an append-only manifest
``raw/<source>/_manifest.jsonl`` with one entry per delivery (name, sha256, size, time, delivery id).
Raw files are never modified: a file whose name is already taken that day, or whose name is
longer than a file system allows, is stored under a name carrying its hash.

A *delivery* is one ingested file, identified by its content and its place in the raw zone, never
by its name alone: its id (:func:`delivery_id`) is its position in the source's manifest with the
start of its sha256, so ids sort in delivery order. The same content again for a source is
skipped as already ingested (the file is hashed every time: size and modification time prove
nothing). Whether a delivery replaces the earlier deliveries of its name is recorded with it
(``replace``) or declared by its source; see :meth:`retail_etl.lake.lake.Lake.pending`.

A raw copy is read-only and no more readable than its source: it keeps the source's read bits,
limited by the process umask (see :func:`raw_mode`). A symbolic link is refused unless the
caller asks to follow it, so a link planted among the inputs cannot pull an arbitrary file
into the lake.
"""

from __future__ import annotations

import datetime as dt
import hashlib
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


def delivery_id(position: int, digest: str) -> str:
    """The id of the delivery at ``position`` (0-based) in its source's manifest, with content
    ``digest``: short, ASCII, and sorting in delivery order (``00000003-1a2b3c4d5e6f``)."""
    return f"{position:08d}-{digest[:12]}"


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
    """One delivery: an ingested file."""

    source: str
    name: str  # the original file name, kept for readers (and the identity for ``replace``)
    path: str  # location in the raw zone, relative to the lake root: unique per delivery
    sha256: str
    size: int
    ingested_at: str  # ISO timestamp, UTC
    ingest_date: str  # YYYY-MM-DD
    origin: str = ""  # where it was copied from
    origin_mtime_ns: int = 0
    delivery_id: str = ""  # see :func:`delivery_id`
    replace: bool = False  # replaces the earlier deliveries of its name (``ingest --replace``)


class RawZone:
    """Ingest into, and list, the raw zone of a lake's storage."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def manifest(self, source: str) -> list[RawFile]:
        """Every delivery ingested for ``source``, in ingest order."""
        text = self.storage.read_text(f"raw/{source}/{MANIFEST}") or ""
        # A last line without its newline is an append cut short by a crash: not an entry.
        entries = [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n") and line.strip()]
        # Entries written before delivery ids existed get the id of their position.
        return [RawFile(**{"delivery_id": delivery_id(i, e["sha256"]), **e}) for i, e in enumerate(entries)]

    def ingest(
        self, source: str, files: Iterable[Path], *, today: dt.date | None = None, follow_symlinks: bool = False,
        replace: bool = False,
    ) -> list[RawFile]:
        """Copy ``files`` into the raw zone; returns the new deliveries.

        A file whose content was already ingested for ``source`` is skipped, except, with
        ``replace`` (the new deliveries replace the earlier ones of their name), when that content
        is not the current version of its name (a revert). A symbolic link is a
        :class:`SourceError` unless ``follow_symlinks``; followed, the copy holds the content of
        the file it points to, under the link's name.
        """
        files = [Path(f) for f in files]
        if not follow_symlinks:
            for file in files:
                if file.is_symlink():
                    _refuse_symlink(file, source)
        known = self.manifest(source)
        contents = {f.sha256 for f in known}
        current = {f.name: f.sha256 for f in known}  # each name's latest content
        taken = {f.path for f in known}
        added: list[RawFile] = []
        umask = process_umask()
        for file in files:
            if file.is_dir():
                raise SourceError("is a folder, not a file", path=str(file),
                                  hint="name the files in it, e.g. folder/*.csv")
            if not file.is_file():
                raise SourceError("no such file", path=str(file), hint="check the path or the source's `path` glob")
            info = file.stat()
            digest = file_sha256(file)
            revert = replace and current.get(file.name, digest) != digest
            if digest in contents and not revert:
                continue
            day = today or dt.datetime.now(dt.UTC).date()
            entry = self._store(source, file, digest, info, day, umask, taken,
                                delivery_id(len(known) + len(added), digest), replace)
            self._append(source, entry)
            contents.add(digest)
            current[entry.name] = digest
            taken.add(entry.path)
            added.append(entry)
        return added

    def _store(
        self, source: str, file: Path, digest: str, info: os.stat_result, day: dt.date, umask: int,
        taken: set[str], delivery: str, replace: bool,
    ) -> RawFile:
        rel, stored = self._free_path(f"raw/{source}/ingest_date={day.isoformat()}", file.name, digest, taken,
                                      delivery)
        if not stored:
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
            delivery_id=delivery,
            replace=replace,
        )

    def _free_path(self, folder: str, name: str, digest: str, taken: set[str], delivery: str) -> tuple[str, bool]:
        """(raw path, already stored) for a new delivery: a path no other delivery has, either free
        or holding this very content (a copy a crash left unrecorded); its name within
        :data:`NAME_MAX` bytes."""
        unique = hashlib.sha256(f"{digest}:{delivery}".encode()).hexdigest()
        plain = name if len(name.encode()) <= NAME_MAX else versioned_name(name, digest)
        for candidate in (plain, versioned_name(name, digest), versioned_name(name, unique)):
            rel = f"{folder}/{candidate}"
            if rel in taken:
                continue
            existing = self.storage.sha256(rel)
            if existing is None or existing == digest:
                return rel, existing is not None
        raise SourceError(f"no free name in {folder} for a new delivery of this file", path=name,
                          hint="rename the file and ingest it again")

    def _append(self, source: str, entry: RawFile) -> None:
        self.storage.append_line(f"raw/{source}/{MANIFEST}", json.dumps(asdict(entry), sort_keys=True) + "\n")

    def local_path(self, entry: RawFile) -> Path:
        """A local file with the content of ``entry`` (downloaded when the lake is remote)."""
        return self.storage.local_copy(entry.path)
