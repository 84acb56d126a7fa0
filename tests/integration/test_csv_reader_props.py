"""Property tests for sources.csv_reader: dirty CSV files lose nothing, and both readers agree."""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from unittest import mock

import duckdb
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from retail_etl.config.model import CsvOptions
from retail_etl.sources import csv_lines
from retail_etl.sources.csv_reader import ReadResult, load_csv

_counter = itertools.count()

PLAIN = st.text(alphabet="abcxyz019 .-é€ü", max_size=6)
QUOTED_BODY = st.text(alphabet='ab ,;\t"\n\r\\é', max_size=8)
ONE_LINE_BODY = st.text(alphabet='ab ,;\t"\\é', max_size=8)
#: Bytes invalid in each encoding (latin-1 has none).
INVALID = {"utf-8": [b"\xff", b"\xc3", b"\xe2\x82", b"\x80"], "utf-16": [b"\x00\xd8"], "latin-1": []}


FIELD_KINDS = ("plain", "plain", "quoted", "empty", "spaced")


@st.composite
def field(draw: st.DrawFn, delim: str, escape: str, multiline: bool, kinds: tuple[str, ...] = FIELD_KINDS) -> str:
    kind = draw(st.sampled_from(kinds))
    if kind == "empty":
        return ""
    if kind == "plain":
        return draw(PLAIN).replace(delim, "")
    body = draw(QUOTED_BODY if multiline else ONE_LINE_BODY)
    if escape == '"':
        body = body.replace('"', '""')
    else:
        body = body.replace("\\", "\\\\").replace('"', '\\"')
    if kind == "spaced":  # DuckDB drops one leading and any trailing spaces around quotes
        return ' "' + body + '"' + draw(st.sampled_from(["", " ", "  "]))
    return '"' + body + '"'


@st.composite
def dirty_csv(draw: st.DrawFn) -> tuple[bytes, CsvOptions]:
    """A small CSV file with every kind of dirt, and the options to read it."""
    encoding = draw(st.sampled_from(["utf-8"] * 6 + ["latin-1", "utf-16"]))
    delim = draw(st.sampled_from([",", ";", "\t"]))
    escape = draw(st.sampled_from(['"', '"', '"', "\\"]))
    ncols = draw(st.integers(1, 4))
    eol = draw(st.sampled_from(["\n", "\n", "\r\n"]))
    mixed_eol = draw(st.booleans()) and draw(st.booleans())
    # Half the files keep every record on one line (no newline in quotes), so the DuckDB
    # reader applies and is compared with the Python reader -- also when some lines have an
    # unterminated quote (DuckDB then reads a copy without them).
    multiline = draw(st.booleans())
    header = draw(st.sampled_from([True, True, True, False]))
    skip = draw(st.sampled_from([0, 0, 0, 1, 2]))

    def encode(text: str) -> bytes:
        return text.encode("utf-16-le" if encoding == "utf-16" else encoding, errors="replace")

    out = [encode(draw(st.sampled_from(["report", 'title "x', "", "a;b,c"])) + eol) for _ in range(skip)]
    if header:
        out.append(encode(delim.join(f"c{i}" for i in range(ncols)) + eol))
    kinds = ["good"] * 6 + ["short", "long", "wide", "blank", "junk", "stray_cr"]
    kinds += ["invalid"] if INVALID[encoding] else []
    kinds += ["unbalanced"] * 2
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(kinds))
        if kind in ("good", "short", "long", "wide", "invalid"):
            n = ncols + {"short": -1, "long": 1}.get(kind, 0)
            if kind == "wide":  # a line DuckDB's reader does not see
                n += csv_lines.MAX_EXTRA_FIELDS + draw(st.integers(1, 3))
            raw = encode(delim.join(draw(field(delim, escape, multiline)) for _ in range(n or ncols + 1)))
            if kind == "invalid":
                at = draw(st.integers(0, len(raw) // 2)) * (2 if encoding == "utf-16" else 1)
                raw = raw[:at] + draw(st.sampled_from(INVALID[encoding])) + raw[at:]
        elif kind == "blank":
            raw = encode(draw(st.sampled_from(["", "", "  ", "\t", " \t "])))
        elif kind == "stray_cr":
            raw = encode(draw(st.sampled_from(["\r", "x\r", "\r "])) + delim * (ncols - 1))
        elif kind == "unbalanced":  # a quoted field left open (a later line may close it)
            opened = draw(field(delim, escape, False, ("quoted", "spaced"))).rstrip(" ").removesuffix('"')
            before = draw(st.sampled_from(["", draw(PLAIN) + delim]))
            raw = encode(before + opened + draw(st.sampled_from(["", escape])))
        else:
            raw = encode('"' + draw(PLAIN) + '"x' + delim * (ncols - 1))
        out.append(raw + encode(draw(st.sampled_from(["\n", "\r\n"])) if mixed_eol else eol))
    data = b"".join(out)
    if data.endswith(encode(eol)) and draw(st.booleans()):
        data = data[: -len(encode(eol))]  # no final newline
    if encoding == "utf-16":
        data = b"\xff\xfe" + data
    nulls = draw(st.sampled_from([("",), (), ("", "NA")]))
    opts = CsvOptions(
        delimiter=delim,
        escape=escape,
        null_values=nulls,
        encoding=encoding,
        header=header,
        skip_rows=skip,
        column_names=None if header else tuple(f"c{i}" for i in range(ncols)),
    )
    return data, opts


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


def _check_accounting(data: bytes, opts: CsvOptions, result: ReadResult, rows: list, rejects: list) -> None:
    """Every non-blank physical line after the header is a row's first line, a continuation
    line of a multi-line row, or a reject -- exactly once; the others are blank_lines."""
    text = data.decode(opts.encoding, errors="replace")
    physical = text.split("\n") if text else []
    if text.endswith("\n"):
        physical.pop()
    first = opts.skip_rows + (2 if opts.header else 1)
    after_header = range(first, len(physical) + 1)
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
        assert not physical[n - 1].strip(ws), f"line {n} ({physical[n - 1]!r}) was dropped"
    assert len(rest) == result.blank_lines
    assert result.rows == len(rows) and result.rejected == len(rejects)
    assert [r[1] for r in rows] == sorted(r[1] for r in rows), "rows out of file order"


def _extra_fields(reason: str) -> int:
    m = re.fullmatch(r"wrong field count: expected (\d+), found (\d+)", reason)
    return int(m[2]) - int(m[1]) if m else 0


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=dirty_csv())
def test_every_line_accounted_and_readers_agree(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, case: tuple[bytes, CsvOptions]
) -> None:
    data, opts = case
    result, rows, rejects = _load(con, tmp_path, data, opts, None)
    event(f"reader={result.reader}")
    if result.reader == "duckdb" and any(r[3] == csv_lines.REASON_UNTERMINATED for r in rejects):
        event("duckdb reader with unterminated quotes")
    if result.reader == "duckdb" and any(_extra_fields(r[3]) > csv_lines.MAX_EXTRA_FIELDS for r in rejects):
        event("duckdb reader with wide lines")
    _check_accounting(data, opts, result, rows, rejects)
    if result.reader == "duckdb":
        py_result, py_rows, py_rejects = _load(con, tmp_path, data, opts, "python")
        assert rows == py_rows
        assert rejects == py_rejects
        assert replace(result, reader="python") == py_result


# --------------------------------------------------------------------------- line scanning

PIECES = [b"a", b"bc", b",", b'"', b" ", b"\n", b"\n", b"\r", b"\r\n", b"\xff", b"\xc3\xa9", b"\xe2\x82"]


@settings(max_examples=150, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(PIECES), max_size=40),
    chunk=st.integers(1, 9),
    utf16=st.booleans(),
    wanted=st.sets(st.integers(1, 45), max_size=6),
)
def test_line_scanning_does_not_depend_on_chunk_boundaries(
    pieces: list[bytes], chunk: int, utf16: bool, wanted: set[int]
) -> None:
    raw = b"".join(pieces)
    if utf16:  # same text as UTF-16 with a BOM (invalid UTF-8 bytes become U+FFFD)
        text = raw.decode("utf-8", errors="replace")
        data = b"\xff\xfe" + text.encode("utf-16-le")
        fc = csv_lines.resolve_codec("utf-16", data)
        expected = text.split("\n") if text else []
    else:
        data = raw
        fc = csv_lines.resolve_codec("utf-8", data)
        expected = [line.decode("utf-8", errors="retail_etl.mark") for line in raw.split(b"\n")] if raw else []
    if expected and expected[-1] == "":
        expected.pop()  # a final "\n" ends the last line, it does not start one

    scan = csv_lines.scan_lines(io.BytesIO(data), fc, chunk_bytes=chunk)
    assert scan.total == len(expected)
    assert scan.empty.tolist() == [i for i, s in enumerate(expected, 1) if s in ("", "\r")]
    assert scan.lone_cr == raw.count(b"\r") - raw.count(b"\r\n")

    blocks = list(csv_lines.iter_line_blocks(io.BytesIO(data), fc, chunk_bytes=chunk))
    assert [s for _, lines, _ in blocks for s in lines] == expected
    firsts = list(itertools.accumulate([1] + [len(lines) for _, lines, _ in blocks]))
    assert [first for first, _, _ in blocks] == firsts[:-1]
    for _, lines, marks in blocks:
        if any(csv_lines.first_invalid_byte(s) is not None for s in lines):
            assert marks

    got = csv_lines.fetch_lines(io.BytesIO(data), fc, wanted, chunk_bytes=chunk)
    assert got == {n: expected[n - 1] for n in wanted if n <= len(expected)}


OPEN_PIECES = [
    *(b"a", b",", b";", b" ", b"\\", b"\xff", b"\xc3\xa9"),
    *(b'"', b'""', b',"', b';"', b'\n"', b'"a"', b'a"\n'),
    *(b"\n", b"\n", b"\r\n", b"\r"),
]


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(OPEN_PIECES), max_size=40),
    chunk=st.integers(1, 9),
    delim=st.sampled_from([",", ";"]),
    escape=st.sampled_from(['"', "\\"]),
    ncols=st.integers(1, 3),
    first_line=st.integers(1, 3),
    bom=st.booleans(),
    tiny_limit=st.booleans(),
)
def test_find_open_lines_agrees_with_iter_records(
    pieces: list[bytes], chunk: int, delim: str, escape: str, ncols: int, first_line: int, bom: bool, tiny_limit: bool
) -> None:
    """find_open_lines finds exactly the unterminated-quote rejects of iter_records, or the
    first multi-line record, whatever the chunk size (and with lines too long to be open)."""
    data = (b"\xef\xbb\xbf" if bom else b"") + b"".join(pieces)
    fc = csv_lines.resolve_codec("utf-8", data)
    dialect = csv_lines.Dialect(delim, '"', escape)
    nulls = frozenset({""})
    assert csv_lines.can_find_open_lines(fc, dialect)
    with mock.patch.object(csv_lines, "MAX_RECORD_BYTES", 12 if tiny_limit else csv_lines.MAX_RECORD_BYTES):
        batches = list(
            csv_lines.iter_records(
                csv_lines.iter_line_blocks(io.BytesIO(data), fc), dialect, ncols, fc, first_line=first_line, nulls=nulls
            )
        )
        got = csv_lines.find_open_lines(
            io.BytesIO(data), fc, dialect, ncols, first_line=first_line, nulls=nulls, chunk_bytes=chunk
        )
    multi = sorted(n for b in batches for n in b.spans)
    if multi:
        event("multi-line record")
        assert got == multi[0]
        return
    expected = [(n, raw) for b in batches for n, raw, reason in b.rejects if reason == csv_lines.REASON_UNTERMINATED]
    event(f"open lines: {min(len(expected), 2)}")
    assert isinstance(got, list)
    assert [(o.line, o.text) for o in got] == expected
    for o in got:
        assert data[o.start : o.end].decode() == o.text
        assert o.start == fc.bom_len or data[o.start - 1] == ord("\n")
        assert data[o.end :] in (b"", b"\r") or data[o.end :].startswith((b"\n", b"\r\n"))


WIDE_PIECES = [
    *(b"a", b",", b",", b",", b";", b" ", b"\xff", b"\xc3\xa9"),
    *(b'"', b'""', b'","', b'"a"'),
    *(b"\n", b"\n", b"\r\n", b"\r"),
]


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(WIDE_PIECES), max_size=50),
    chunk=st.integers(1, 9),
    delim=st.sampled_from([",", ";"]),
    ncols=st.integers(1, 3),
    max_extra=st.integers(0, 2),
    first_line=st.integers(1, 3),
    utf16=st.booleans(),
    tiny_limit=st.booleans(),
)
def test_find_wide_lines_finds_the_wide_and_long_rejects(
    pieces: list[bytes],
    chunk: int,
    delim: str,
    ncols: int,
    max_extra: int,
    first_line: int,
    utf16: bool,
    tiny_limit: bool,
) -> None:
    """find_wide_lines lists exactly the lines rejected on their own that have more than
    ``max_extra`` extra delimiters or are too long, with the Python reader's raw text and
    reason, whatever the chunk size and in UTF-8 and UTF-16."""
    raw = b"".join(pieces)
    if utf16:
        data = b"\xff\xfe" + raw.decode("utf-8", errors="replace").encode("utf-16-le")
        fc = csv_lines.resolve_codec("utf-16", data)
    else:
        data = raw
        fc = csv_lines.resolve_codec("utf-8", data)
    width = 2 if utf16 else 1
    lf, cr = "\n".encode(fc.codec), "\r".encode(fc.codec)
    dialect = csv_lines.Dialect(delim, '"', '"')
    nulls = frozenset({""})
    assert csv_lines.can_find_wide_lines(fc, dialect)
    with mock.patch.object(csv_lines, "MAX_RECORD_BYTES", 12 if tiny_limit else csv_lines.MAX_RECORD_BYTES):
        lines = [s for _, block, _ in csv_lines.iter_line_blocks(io.BytesIO(data), fc) for s in block]
        expected = []
        for n, s in enumerate(lines, 1):
            kind, text, reason = csv_lines.classify_line(s, dialect, ncols, fc, nulls)
            wide = s.count(delim) > ncols - 1 + max_extra or csv_lines.line_too_long(s, fc)
            if n >= first_line and kind == csv_lines.REJECT and wide:
                expected.append((n, text, reason))
        got = csv_lines.find_wide_lines(
            io.BytesIO(data), fc, dialect, ncols, first_line=first_line, nulls=nulls, chunk_bytes=chunk,
            max_extra=max_extra,
        )
        batches = list(
            csv_lines.iter_records(
                csv_lines.iter_line_blocks(io.BytesIO(data), fc), dialect, ncols, fc, first_line=first_line, nulls=nulls
            )
        )
    event(f"wide lines: {min(len(expected), 2)}")
    assert [(o.line, o.text, o.reason) for o in got] == expected
    if not any(b.spans for b in batches):  # every record one line: these are the reader's rejects
        rejects = {r for b in batches for r in b.rejects}
        assert {(o.line, o.text, o.reason) for o in got} <= rejects
    for o in got:
        assert o.start == fc.bom_len or data[o.start - width : o.start] == lf
        rest = data[o.end :]
        assert rest in (b"", cr) or rest.startswith((lf, cr + lf))
        if data[o.start : o.end].endswith(cr):  # a CR of the line's text, not of its terminator
            assert rest.startswith(cr)
