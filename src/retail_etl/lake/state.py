"""Run state kept in the lake: bookmarks of processed raw files, the journal of sale dates
waiting to be re-derived by a later step (the lake lock is the storage's).

Bookmarks are written right after the validate step's commits. A crash between the two leaves
a file unbookmarked; the next run re-derives it and replaces the rows it produced, so data is
never duplicated and never marked done before it is committed. A step journals the dates the
next step must re-derive *before* its own commits, and the next step clears them only after its
commits, so no date is forgotten whatever moment a run is killed at.

Appended figures (the quality metrics) cannot be replaced by file or date: a step records its run
in ``commits_in_flight`` before its commits and removes it once its work is settled, so a run that
redoes the step replaces the figures of every run still recorded there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Iterable, Iterator

from retail_etl.lake.raw import RawFile
from retail_etl.lake.storage import STATE_DB, Storage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bookmarks (
    source TEXT NOT NULL,
    raw_path TEXT NOT NULL,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    processed_at TEXT NOT NULL,
    PRIMARY KEY (source, raw_path)
);
CREATE TABLE IF NOT EXISTS pending_dates (
    stage TEXT NOT NULL,
    sale_date TEXT NOT NULL,
    run_id TEXT NOT NULL,
    PRIMARY KEY (stage, sale_date)
);
CREATE TABLE IF NOT EXISTS commits_in_flight (
    stage TEXT NOT NULL,
    run_id TEXT NOT NULL,
    PRIMARY KEY (stage, run_id)
);
"""


class StateStore:
    """SQLite database ``<lake>/_state/state.db`` (shared with the workflow's tables)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    @contextlib.contextmanager
    def _db(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.storage.db_path(STATE_DB), timeout=30)
        try:
            con.executescript(_SCHEMA)
            with con:
                yield con
        finally:
            con.close()
        if write:
            self.storage.push(STATE_DB)

    def processed(self, source: str) -> set[str]:
        """Raw paths of ``source`` already processed."""
        with self._db() as con:
            return {r[0] for r in con.execute("SELECT raw_path FROM bookmarks WHERE source = ?", (source,))}

    def mark_processed(
        self, files: Iterable[RawFile], run_id: str, *, settles: tuple[str, Iterable[str]] | None = None
    ) -> None:
        """Bookmark ``files``; with ``settles=(stage, run_ids)``, in the same transaction, forget those
        runs' commits in flight (see :meth:`end_commits`)."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with self._db(write=True) as con:
            con.executemany(
                "INSERT OR REPLACE INTO bookmarks VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(f.source, f.path, f.name, f.sha256, f.size, run_id, now) for f in files],
            )
            if settles is not None:
                _end_commits(con, *settles)

    def bookmarks(self, source: str) -> dict[str, tuple[str, str]]:
        """Raw path -> (run id, processed at) for ``source``."""
        with self._db() as con:
            rows = con.execute("SELECT raw_path, run_id, processed_at FROM bookmarks WHERE source = ?", (source,))
            return {r[0]: (r[1], r[2]) for r in rows}

    def reset_bookmarks(self, source: str, names: Iterable[str] | None = None) -> int:
        """Forget that files were processed (all of ``source``'s, or those named); returns how many."""
        with self._db(write=True) as con:
            if names is None:
                return con.execute("DELETE FROM bookmarks WHERE source = ?", (source,)).rowcount
            return sum(
                con.execute("DELETE FROM bookmarks WHERE source = ? AND name = ?", (source, n)).rowcount for n in names
            )

    def pending_dates(self, stage: str) -> list[dt.date]:
        """Sale dates journaled for ``stage`` (transform or analytics) and not yet re-derived."""
        with self._db() as con:
            rows = con.execute("SELECT sale_date FROM pending_dates WHERE stage = ? ORDER BY 1", (stage,))
            return [dt.date.fromisoformat(r[0]) for r in rows]

    def add_pending_dates(self, stage: str, dates: Iterable[dt.date], run_id: str) -> None:
        """Journal dates for ``stage``; call before committing the data that makes them stale."""
        with self._db(write=True) as con:
            con.executemany(
                "INSERT OR REPLACE INTO pending_dates VALUES (?, ?, ?)",
                [(stage, d.isoformat(), run_id) for d in dates],
            )

    def clear_pending_dates(self, stage: str, dates: Iterable[dt.date], *, settles: Iterable[str] = ()) -> None:
        """Remove dates from ``stage``'s journal; call after committing their re-derived data. In the
        same transaction, forget the commits in flight of ``stage`` by the runs ``settles``."""
        with self._db(write=True) as con:
            con.executemany(
                "DELETE FROM pending_dates WHERE stage = ? AND sale_date = ?", [(stage, d.isoformat()) for d in dates]
            )
            _end_commits(con, stage, settles)

    def begin_commits(self, stage: str, run_id: str) -> list[str]:
        """Record that ``run_id`` is about to commit ``stage``; returns every run recorded for it
        (this one included): their appended figures are the ones a new commit replaces."""
        with self._db(write=True) as con:
            con.execute("INSERT OR IGNORE INTO commits_in_flight VALUES (?, ?)", (stage, run_id))
            return [r[0] for r in con.execute(
                "SELECT run_id FROM commits_in_flight WHERE stage = ? ORDER BY run_id", (stage,))]

    def end_commits(self, stage: str, run_ids: Iterable[str]) -> None:
        """Forget runs of ``stage`` whose commits are settled (superseded or complete)."""
        with self._db(write=True) as con:
            _end_commits(con, stage, run_ids)


def _end_commits(con: sqlite3.Connection, stage: str, run_ids: Iterable[str]) -> None:
    con.executemany("DELETE FROM commits_in_flight WHERE stage = ? AND run_id = ?", [(stage, r) for r in run_ids])
