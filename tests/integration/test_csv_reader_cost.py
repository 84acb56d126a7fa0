"""sources.csv_reader on hostile line shapes: cost linear in the input, one reject per line.

A line with very many fields used to cost DuckDB one reject per extra field, each holding the
whole line (113 s and 5.6 GiB for one 400 KB line of 200,000 fields), and a very long line with
many fields did not finish. Times are compared between two sizes of the same shape, so that a
busy machine slows both alike: linear work grows ten-fold with a ten-fold input, quadratic work
a hundred-fold.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import duckdb
import pytest

from retail_etl.config.model import CsvOptions
from retail_etl.sources import csv_lines
from retail_etl.sources.csv_reader import load_csv

HEADER = b"a,b,c\n"
GOOD = (b"1,2,3\n", b"4,5,6\n")


def _file(tmp_path: Path, name: str, line: bytes) -> Path:
    """A file: header, a good line, ``line``, a good line."""
    path = tmp_path / name
    path.write_bytes(HEADER + GOOD[0] + line + b"\n" + GOOD[1])
    return path


def _load(path: Path, force: str | None = None) -> tuple[object, list[tuple], list[tuple], float]:
    con = duckdb.connect()
    try:
        started = time.perf_counter()
        result = load_csv(con, path, CsvOptions(), table="t", rejects_table="r", source_file=path.name, _force=force)
        seconds = time.perf_counter() - started
        rows = con.execute("SELECT _source_line, a, b, c FROM t ORDER BY _source_line").fetchall()
        rejects = con.execute("SELECT _source_line, raw_line, reason FROM r ORDER BY _source_line").fetchall()
    finally:
        con.close()
    return result, rows, rejects, seconds


def _fastest(path: Path, force: str | None = None, runs: int = 3) -> float:
    return min(_load(path, force)[3] for _ in range(runs))


def _assert_one_reject(path: Path, force: str | None, raw: str, reason: str) -> None:
    """Rows read = valid + quarantined: the two good lines are rows, the bad one a single reject."""
    result, rows, rejects, _ = _load(path, force)
    assert rows == [(2, "1", "2", "3"), (4, "4", "5", "6")]
    assert rejects == [(3, raw, reason)]
    assert (result.rows, result.rejected, result.blank_lines) == (2, 1, 0)
    assert result.reader == (force or "duckdb")


@pytest.mark.parametrize("force", [None, "python"])
def test_a_line_of_200000_fields_is_one_reject_in_linear_time(tmp_path: Path, force: str | None) -> None:
    small = b",".join([b"x"] * 20_000)
    big = b",".join([b"x"] * 200_000)  # 400 KB
    small_path, big_path = _file(tmp_path, "small.csv", small), _file(tmp_path, "big.csv", big)
    _assert_one_reject(big_path, force, big.decode(), csv_lines.wrong_count(3, 200_000))
    _assert_one_reject(small_path, force, small.decode(), csv_lines.wrong_count(3, 20_000))
    ratio = _fastest(big_path, force) / _fastest(small_path, force)
    assert ratio < 15, f"10x the fields took {ratio:.1f}x the time"


@pytest.mark.parametrize("force", [None, "python"])
@pytest.mark.parametrize("unit", [b"x", b"x,"], ids=["one field", "many fields"])
def test_a_50_mb_line_is_one_cut_reject_in_bounded_memory(tmp_path: Path, force: str | None, unit: bytes) -> None:
    line = unit * (50_000_000 // len(unit))
    path = _file(tmp_path, "long.csv", line)
    keep = csv_lines.MAX_RECORD_BYTES
    assert "raw_line keeps its first" in csv_lines.REASON_TOO_LONG
    tracemalloc.start()
    try:
        _assert_one_reject(path, force, line[:keep].decode(), csv_lines.REASON_TOO_LONG)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The reader streams in chunks and keeps at most MAX_RECORD_BYTES of a line; the whole line is 50 MB.
    assert peak < 8 * csv_lines.CHUNK_BYTES, f"peak Python memory {peak / 2**20:.0f} MiB"


def test_a_long_line_costs_linear_time(tmp_path: Path) -> None:
    small = _file(tmp_path, "small.csv", b"x," * 2_500_000)  # 5 MB
    big = _file(tmp_path, "big.csv", b"x," * 25_000_000)  # 50 MB
    ratio = _fastest(big, runs=2) / _fastest(small, runs=2)
    assert ratio < 15, f"10x the line took {ratio:.1f}x the time"


def test_wide_lines_whose_extra_delimiters_are_quoted_are_rows(tmp_path: Path) -> None:
    quoted = b'x,y,"' + b"," * 200_000 + b'"'
    trailing = b"x,y,z" + b"," * 200_000  # extra empty fields: null strings, dropped
    for name, line, last in [("quoted.csv", quoted, "," * 200_000), ("trailing.csv", trailing, "z")]:
        result, rows, rejects, _ = _load(_file(tmp_path, name, line))
        assert result.reader == "duckdb"
        assert rows == [(2, "1", "2", "3"), (3, "x", "y", last), (4, "4", "5", "6")]
        assert rejects == []


def test_many_wide_lines_keep_the_fast_path_and_their_order(tmp_path: Path) -> None:
    wide = [b",".join([str(i).encode()] * (20 + i)) for i in range(50)]
    lines = [b"1,2,3" if i % 2 else wide[i // 2] for i in range(100)]
    path = tmp_path / "mixed.csv"
    path.write_bytes(HEADER + b"\n".join(lines) + b"\n")
    result, rows, rejects, _ = _load(path)
    assert result.reader == "duckdb"
    assert [r[0] for r in rows] == list(range(3, 102, 2))
    assert [(r[0], r[2]) for r in rejects] == [(2 + 2 * i, csv_lines.wrong_count(3, 20 + i)) for i in range(50)]
    assert [r[1] for r in rejects] == [w.decode() for w in wide]
    assert result.rows + result.rejected == 100
