"""Property tests for sources.csv_reader: dirty CSV files lose nothing, and both readers agree."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from retail_etl.config.model import CsvOptions
from retail_etl.sources.csv_reader import load_csv

_counter = itertools.count()

PLAIN = st.text(alphabet="abcxyz019 .-é€ü", max_size=6)
QUOTED_BODY = st.text(alphabet='ab ,;\t"\n\r\\é', max_size=8)
ONE_LINE_BODY = st.text(alphabet='ab ,;\t"\\é', max_size=8)


@st.composite
def field(draw: st.DrawFn, delim: str, escape: str, multiline: bool) -> str:
    kind = draw(st.sampled_from(["plain", "plain", "quoted", "empty", "spaced"]))
    if kind == "empty":
        return ""
    if kind == "plain":
        text = draw(PLAIN)
        return text.replace(delim, "") if delim in text else text
    body = draw(QUOTED_BODY if multiline else ONE_LINE_BODY)
    if escape == '"':
        body = body.replace('"', '""')
    else:
        body = body.replace("\\", "\\\\").replace('"', '\\"')
    if kind == "spaced":  # DuckDB drops one leading and any trailing spaces around quotes
        return " " + '"' + body + '"' + draw(st.sampled_from(["", " ", "  "]))
    return '"' + body + '"'


@st.composite
def dirty_csv(draw: st.DrawFn) -> tuple[bytes, CsvOptions]:
    delim = draw(st.sampled_from([",", ";", "\t"]))
    escape = draw(st.sampled_from(['"', '"', '"', "\\"]))
    ncols = draw(st.integers(1, 4))
    eol = draw(st.sampled_from(["\n", "\n", "\r\n"]))
    mixed_eol = draw(st.booleans()) and draw(st.booleans())
    # Half the files keep every record on one line (no newline in quotes, no stray quote),
    # so the DuckDB reader applies and is compared with the Python reader.
    multiline = draw(st.booleans())
    header = delim.join(f"c{i}" for i in range(ncols))
    lines: list[bytes] = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(
            st.sampled_from(
                ["good"] * 6 + ["short", "long", "blank", "invalid", "junk"] + (["unbalanced"] if multiline else [])
            )
        )
        if kind in ("good", "short", "long", "invalid"):
            n = ncols + {"short": -1, "long": 1}.get(kind, 0)
            if n < 1:
                n = ncols + 1
            text = delim.join(draw(field(delim, escape, multiline)) for _ in range(n))
            raw = text.encode()
            if kind == "invalid":
                at = draw(st.integers(0, len(raw)))
                raw = raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\x80"])) + raw[at:]
        elif kind == "blank":
            raw = draw(st.sampled_from(["", "", "  ", "\t", " \t "])).encode()
        elif kind == "unbalanced":
            raw = (draw(PLAIN) + delim + '"' + draw(PLAIN)).encode()
        else:
            raw = ('"' + draw(PLAIN) + '"x' + delim * (ncols - 1)).encode()
        end = draw(st.sampled_from(["\n", "\r\n"])) if mixed_eol else eol
        lines.append(raw + end.encode())
    data = (header + eol).encode() + b"".join(lines)
    if data.endswith(eol.encode()) and draw(st.booleans()):
        data = data[: -len(eol)]  # no final newline
    nulls = draw(st.sampled_from([("",), (), ("", "NA")]))
    return data, CsvOptions(delimiter=delim, escape=escape, null_values=nulls)


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()  # one connection: connecting costs more than a small load
    yield connection
    connection.close()


def _load(con: duckdb.DuckDBPyConnection, tmp: Path, data: bytes, opts: CsvOptions, force: str | None):
    n = next(_counter)
    path = tmp / f"f{n}.csv"
    path.write_bytes(data)
    t, rej = f"t{n}", f"rej{n}"
    result = load_csv(con, path, opts, table=t, rejects_table=rej, source_file="f.csv", _force=force)
    rows = con.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall()
    rejects = con.execute(f"SELECT * FROM {rej} ORDER BY _source_line").fetchall()
    con.execute(f"DROP TABLE {t}; DROP TABLE {rej}")
    return result, rows, rejects


def _check_accounting(data: bytes, opts: CsvOptions, result, rows, rejects) -> None:
    physical = data.split(b"\n")
    if data.endswith(b"\n"):
        physical.pop()
    after_header = range(2, len(physical) + 1)
    covered: list[int] = []
    for row in rows:
        span = 1 + sum(v.count("\n") for v in row[2:] if v is not None)
        covered.extend(range(row[1], row[1] + span))
    covered.extend(r[1] for r in rejects)
    assert len(covered) == len(set(covered)), "a line belongs to two records"
    assert set(covered) <= set(after_header)
    ws = "".join(c for c in " \t\r\f\v" if c != opts.delimiter)
    covered_set = set(covered)
    rest = [n for n in after_header if n not in covered_set]
    for n in rest:
        text = physical[n - 1].decode("utf-8", errors="replace")
        assert not text.strip(ws), f"line {n} ({text!r}) was dropped"
    assert len(rest) == result.blank_lines
    assert result.rows == len(rows) and result.rejected == len(rejects)
    assert [r[1] for r in rows] == sorted(r[1] for r in rows), "rows out of file order"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=dirty_csv())
def test_every_line_accounted_and_readers_agree(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, case: tuple[bytes, CsvOptions]
) -> None:
    data, opts = case
    result, rows, rejects = _load(con, tmp_path, data, opts, None)
    event(f"reader={result.reader}")
    _check_accounting(data, opts, result, rows, rejects)
    if result.reader == "duckdb":
        py_result, py_rows, py_rejects = _load(con, tmp_path, data, opts, "python")
        assert rows == py_rows
        assert rejects == py_rejects
        assert replace(result, reader="python") == py_result
