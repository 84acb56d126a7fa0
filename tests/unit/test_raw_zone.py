"""The raw zone: unchanged, checksummed copies; versions; a manifest that survives a torn append."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import pytest

from retail_etl.errors import SourceError
from retail_etl.lake.raw import RawZone
from retail_etl.lake.storage import LocalStorage


def test_ingest_copies_unchanged_and_records_sha256(tmp_path: Path) -> None:
    zone = RawZone(LocalStorage(tmp_path / "lake"))
    src = tmp_path / "sales.csv"
    src.write_bytes(b"a,b\n1,\xe9\n")
    (entry,) = zone.ingest("sales", [src], today=dt.date(2024, 3, 1))
    stored = zone.local_path(entry)
    assert entry.path == "raw/sales/ingest_date=2024-03-01/sales.csv"
    assert stored.read_bytes() == src.read_bytes()
    assert entry.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert not os.access(stored, os.W_OK) or os.geteuid() == 0  # read-only (root may still write)
    assert stored.stat().st_mode & 0o222 == 0


def test_same_content_is_skipped_and_a_changed_file_is_a_new_version(tmp_path: Path) -> None:
    zone = RawZone(LocalStorage(tmp_path / "lake"))
    src = tmp_path / "sales.csv"
    src.write_text("a\n1\n")
    day = dt.date(2024, 3, 1)
    assert len(zone.ingest("sales", [src], today=day)) == 1
    assert zone.ingest("sales", [src], today=day) == []
    src.write_text("a\n2\n")
    (second,) = zone.ingest("sales", [src], today=day)
    assert second.name == "sales.csv" and second.path != zone.manifest("sales")[0].path
    assert zone.local_path(zone.manifest("sales")[0]).read_text() == "a\n1\n"  # the first version is untouched
    assert [f.name for f in zone.manifest("sales")] == ["sales.csv", "sales.csv"]


def test_a_torn_manifest_line_is_ignored_and_repaired(tmp_path: Path) -> None:
    zone = RawZone(LocalStorage(tmp_path / "lake"))
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_text(f"x\n{name}\n")
    zone.ingest("s", [tmp_path / "a.csv"])
    manifest = tmp_path / "lake" / "raw" / "s" / "_manifest.jsonl"
    with open(manifest, "ab") as fh:
        fh.write(b'{"source": "s", "na')  # a crash in the middle of an append
    assert [f.name for f in zone.manifest("s")] == ["a.csv"]
    zone.ingest("s", [tmp_path / "b.csv"])
    assert [f.name for f in zone.manifest("s")] == ["a.csv", "b.csv"]
    assert manifest.read_text().count("\n") == 2


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        RawZone(LocalStorage(tmp_path / "lake")).ingest("s", [tmp_path / "nope.csv"])
