"""The raw zone: unchanged, checksummed copies; versions; a manifest that survives a torn append."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from retail_etl.errors import SourceError
from retail_etl.lake.raw import RawZone, discover, process_umask, raw_mode, versioned_name
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
    with pytest.raises(SourceError, match="is a folder, not a file"):
        RawZone(LocalStorage(tmp_path / "lake")).ingest("s", [tmp_path])


@pytest.mark.parametrize(("source_mode", "umask", "expected"), [
    (0o600, 0o022, 0o400),  # private stays private
    (0o640, 0o022, 0o440),
    (0o644, 0o022, 0o444),
    (0o666, 0o002, 0o444),  # write bits never kept
    (0o755, 0o022, 0o444),  # nor execute bits: a raw copy is data
    (0o644, 0o077, 0o400),  # the umask limits what the source allows
    (0o044, 0o022, 0o444),  # the lake's owner can always read its copy
    (0o4644 | 0o100000, 0o022, 0o444),  # file type and set-id bits dropped
])
def test_raw_mode_keeps_read_bits_limited_by_the_umask(source_mode: int, umask: int, expected: int) -> None:
    assert raw_mode(source_mode, umask) == expected


def test_process_umask_is_read_without_changing_it() -> None:
    old = os.umask(0o027)
    try:
        assert process_umask() == 0o027
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(old)


@pytest.mark.parametrize(("source_mode", "umask", "expected"), [
    (0o600, 0o022, 0o400), (0o644, 0o022, 0o444), (0o644, 0o027, 0o440), (0o755, 0o000, 0o444),
])
def test_a_raw_copy_is_no_more_readable_than_its_source(
    tmp_path: Path, source_mode: int, umask: int, expected: int
) -> None:
    src = tmp_path / "sales.csv"
    src.write_text("a\n1\n")
    src.chmod(source_mode)
    old = os.umask(umask)
    try:
        (entry,) = RawZone(LocalStorage(tmp_path / "lake")).ingest("sales", [src])
    finally:
        os.umask(old)
    stored = tmp_path / "lake" / entry.path
    assert stat.S_IMODE(stored.stat().st_mode) == expected
    assert stored.read_text() == "a\n1\n"
    assert [p.name for p in stored.parent.iterdir()] == ["sales.csv"]  # no temporary file left behind


def test_a_symlink_is_refused_unless_followed(tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("a\nnot for the lake\n")
    link = tmp_path / "sales.csv"
    link.symlink_to(secret)
    plain = tmp_path / "plain.csv"
    plain.write_text("a\n1\n")
    zone = RawZone(LocalStorage(tmp_path / "lake"))
    with pytest.raises(SourceError) as refused:
        zone.ingest("sales", [plain, link])
    assert "is a symbolic link" in refused.value.message and str(secret) in refused.value.message
    assert "--follow-symlinks" in (refused.value.hint or "") and "follow_symlinks: true" in (refused.value.hint or "")
    assert zone.manifest("sales") == []  # refused before anything is copied, the plain file included
    entries = zone.ingest("sales", [plain, link], follow_symlinks=True)
    assert [e.name for e in entries] == ["plain.csv", "sales.csv"]
    followed = zone.local_path(entries[1])
    assert followed.read_text() == "a\nnot for the lake\n" and not followed.is_symlink()
    assert entries[1].origin == str(secret.resolve())


def test_a_dangling_symlink_is_refused_and_followed_is_missing(tmp_path: Path) -> None:
    link = tmp_path / "sales.csv"
    link.symlink_to(tmp_path / "gone.csv")
    zone = RawZone(LocalStorage(tmp_path / "lake"))
    with pytest.raises(SourceError, match="is a symbolic link"):
        zone.ingest("sales", [link])
    with pytest.raises(SourceError, match="no such file"):
        zone.ingest("sales", [link], follow_symlinks=True)


def test_discover_lists_files_not_directories(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "sales_b.csv").write_text("a\n")
    (data / "sales_a.csv").write_text("a\n")
    (data / "sales_dir.csv").mkdir()  # a folder matching the glob
    (data / "other.csv").write_text("a\n")
    assert [p.name for p in discover(tmp_path, "data/sales*.csv", source="s")] == ["sales_a.csv", "sales_b.csv"]
    assert [p.name for p in discover(Path("/elsewhere"), str(data / "sales_?.csv"), source="s")] == [
        "sales_a.csv", "sales_b.csv"]
    assert discover(tmp_path, "data/sales_a.csv", source="s") == [data / "sales_a.csv"]
    assert discover(tmp_path, "data/missing.csv", source="s") == []


@pytest.mark.parametrize(("pattern", "link"), [
    ("data/*.csv", "data/linked.csv"),  # a link to a file
    ("data/*.csv", "data/dangling.csv"),  # a link to nothing
    ("data/*/*.csv", "data/planted"),  # a link to a folder, reached by a wildcard
    ("data/linked.csv", "data/linked.csv"),  # named literally, still an input file
])
def test_discover_refuses_symlinks_unless_followed(tmp_path: Path, pattern: str, link: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("a\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "plain.csv").write_text("a\n")
    (tmp_path / link).symlink_to(outside if link.endswith("planted") else outside / (
        "gone.csv" if "dangling" in link else "secret.csv"))
    with pytest.raises(SourceError) as refused:
        discover(tmp_path, pattern, source="sales")
    assert refused.value.path == str(tmp_path / link) and "is a symbolic link" in refused.value.message
    assert "follow_symlinks: true` on source 'sales'" in (refused.value.hint or "")
    followed = discover(tmp_path, pattern, source="sales", follow_symlinks=True)
    assert tmp_path / link in followed or (tmp_path / link / "secret.csv") in followed


def test_discover_follows_links_among_the_folders_the_pattern_names(tmp_path: Path) -> None:
    real = tmp_path / "share"
    real.mkdir()
    (real / "sales.csv").write_text("a\n")
    (tmp_path / "data").symlink_to(real)  # e.g. a mounted share linked into the project
    assert discover(tmp_path, "data/*.csv", source="s") == [tmp_path / "data" / "sales.csv"]


def test_versioned_names_stay_within_the_name_limit() -> None:
    digest = "0123456789abcdef" * 4
    assert versioned_name("sales.csv", digest) == "sales.0123456789ab.csv"
    long = "é" * 120 + ".csv"  # 244 bytes
    named = versioned_name(long, digest)
    assert len(named.encode()) <= 255 and named.endswith(".0123456789ab.csv") and named.startswith("é" * 119)


def test_a_name_near_the_limit_is_stored_and_versioned(tmp_path: Path) -> None:
    src = tmp_path / ("n" * 251 + ".csv")  # 255 bytes: the longest name the file system takes
    src.write_text("a\n1\n")
    zone = RawZone(LocalStorage(tmp_path / "lake"))
    day = dt.date(2024, 3, 1)
    (first,) = zone.ingest("sales", [src], today=day)
    src.write_text("a\n2\n")
    (second,) = zone.ingest("sales", [src], today=day)
    assert first.path.endswith(src.name) and second.name == src.name
    assert zone.local_path(first).read_text() == "a\n1\n" and zone.local_path(second).read_text() == "a\n2\n"
    assert len(Path(second.path).name.encode()) == 255


def test_a_recursive_pattern_never_descends_into_a_linked_folder(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.csv").write_text("a\n")
    (tmp_path / "data" / "2024").mkdir(parents=True)
    (tmp_path / "data" / "2024" / "sales.csv").write_text("a\n")
    (tmp_path / "data" / "planted").symlink_to(tmp_path / "outside")
    assert discover(tmp_path, "data/**/*.csv", source="s") == [tmp_path / "data" / "2024" / "sales.csv"]


def test_a_file_rewritten_with_the_same_size_and_mtime_is_a_new_delivery(tmp_path: Path) -> None:
    zone = RawZone(LocalStorage(tmp_path / "lake"))
    src = tmp_path / "sales.csv"
    src.write_text("a\n1\n")
    (first,) = zone.ingest("sales", [src])
    before = src.stat()
    src.write_text("a\n2\n")
    os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
    (second,) = zone.ingest("sales", [src])
    assert second.sha256 != first.sha256 and second.path != first.path
    assert [f.delivery_id for f in zone.manifest("sales")] == [first.delivery_id, second.delivery_id]
    assert first.delivery_id == f"00000000-{first.sha256[:12]}"
    assert second.delivery_id == f"00000001-{second.sha256[:12]}"


def test_the_same_content_under_another_name_or_folder_is_skipped(tmp_path: Path) -> None:
    zone = RawZone(LocalStorage(tmp_path / "lake"))
    for folder, text in (("north", "a\n1\n"), ("south", "a\n2\n"), ("west", "a\n1\n")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "export.csv").write_text(text)
    added = zone.ingest("s", [tmp_path / f / "export.csv" for f in ("north", "south", "west")],
                        today=dt.date(2024, 3, 1))
    assert [a.origin for a in added] == [str(tmp_path / "north" / "export.csv"), str(tmp_path / "south" / "export.csv")]
    assert added[0].path.endswith("/export.csv") and added[1].path != added[0].path
    (tmp_path / "copy.csv").write_text("a\n2\n")
    assert zone.ingest("s", [tmp_path / "copy.csv"]) == []


def test_a_replacing_revert_to_an_older_content_is_a_new_delivery(tmp_path: Path) -> None:
    zone = RawZone(LocalStorage(tmp_path / "lake"))
    src = tmp_path / "sales.csv"
    day = dt.date(2024, 3, 1)
    for text in ("a\n1\n", "a\n2\n"):
        src.write_text(text)
        zone.ingest("sales", [src], today=day, replace=True)
    assert zone.ingest("sales", [src], today=day, replace=True) == []  # the current version again
    src.write_text("a\n1\n")
    assert zone.ingest("sales", [src], today=day) == []  # accumulating: content already ingested
    (revert,) = zone.ingest("sales", [src], today=day, replace=True)
    paths = [f.path for f in zone.manifest("sales")]
    assert len(set(paths)) == 3 and revert.replace
    assert zone.local_path(revert).read_text() == "a\n1\n"


def test_a_name_over_the_limit_is_stored_under_a_hashed_name(tmp_path: Path) -> None:
    zone = RawZone(LocalStorage(tmp_path / "lake"))
    stored = zone._free_path("raw/s/ingest_date=2024-03-01", "é" * 130 + ".csv", "ab" * 32, set(), "00000000-x")
    assert len(Path(stored[0]).name.encode()) <= 255 and stored[0].endswith(".abababababab.csv")
    assert stored[1] is False


def test_old_manifest_entries_get_the_delivery_id_of_their_position(tmp_path: Path) -> None:
    manifest = tmp_path / "lake" / "raw" / "s" / "_manifest.jsonl"
    manifest.parent.mkdir(parents=True)
    entry = {"source": "s", "name": "a.csv", "path": "raw/s/ingest_date=2024-01-01/a.csv", "sha256": "f" * 64,
             "size": 1, "ingested_at": "2024-01-01T00:00:00+00:00", "ingest_date": "2024-01-01"}
    manifest.write_text(json.dumps(entry) + "\n" + json.dumps({**entry, "sha256": "e" * 64}) + "\n")
    assert [f.delivery_id for f in RawZone(LocalStorage(tmp_path / "lake")).manifest("s")] == [
        "00000000-ffffffffffff", "00000001-eeeeeeeeeeee"]
