"""sources.csv_reader on real files: nothing lost, exact line numbers, both readers agree."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from retail_etl.config.model import CsvOptions
from retail_etl.errors import PermanentError, SourceError
from retail_etl.sources import csv_lines
from retail_etl.sources.csv_reader import ReadResult, load_csv, read_header

_names = itertools.count()


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    yield connection
    connection.close()


class Loaded:
    """One load_csv run: its result, rows (in table order) and rejects."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path, opts: CsvOptions, force: str | None) -> None:
        n = next(_names)
        self.table, self.rejects_table = f"t{n}", f"rej{n}"
        self.result = load_csv(
            con, path, opts, table=self.table, rejects_table=self.rejects_table, source_file=path.name, _force=force
        )
        self.columns = [d[0] for d in con.execute(f"SELECT * FROM {self.table} LIMIT 0").description]
        self.all_rows = con.execute(f"SELECT * FROM {self.table} ORDER BY rowid").fetchall()
        self.all_rejects = con.execute(f"SELECT * FROM {self.rejects_table} ORDER BY _source_line").fetchall()

    @property
    def rows(self) -> list[tuple]:
        """(line, field, ...) without the file name."""
        return [r[1:] for r in self.all_rows]

    @property
    def rejects(self) -> list[tuple]:
        """(line, raw_line, reason)."""
        return [r[1:] for r in self.all_rejects]


def write(tmp_path: Path, data: bytes | str, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def load(con, path: Path, opts: CsvOptions | None = None, force: str | None = None) -> Loaded:
    return Loaded(con, path, opts or CsvOptions(), force)


def load_both(con, path: Path, opts: CsvOptions | None = None, *, expect: str = "duckdb") -> Loaded:
    """Load with the automatic choice (asserting which reader it took) and with the Python
    reader; the two must agree on everything but ReadResult.reader."""
    auto = load(con, path, opts)
    assert auto.result.reader == expect
    python = load(con, path, opts, force="python")
    assert python.result.reader == "python"
    assert auto.all_rows == python.all_rows
    assert auto.all_rejects == python.all_rejects
    assert replace(auto.result, reader="python") == python.result
    assert_accounted(path, opts or CsvOptions(), auto)
    return auto


def assert_accounted(path: Path, opts: CsvOptions, loaded: Loaded) -> None:
    """Every physical line after the header is exactly one of: a row's first line, a
    continuation line of a multi-line row, a reject, or a blank line."""
    text = path.read_bytes().decode(opts.encoding, errors="replace")
    physical = text.split("\n") if text else []
    if text.endswith("\n"):
        physical.pop()
    first = opts.skip_rows + (2 if opts.header else 1)
    after_header = list(range(first, len(physical) + 1))
    covered: list[int] = []
    for row in loaded.all_rows:
        span = 1 + sum(v.count("\n") for v in row[2:] if v is not None)
        covered.extend(range(row[1], row[1] + span))
    covered.extend(r[1] for r in loaded.all_rejects)
    assert len(covered) == len(set(covered)), "a line was counted twice"
    assert set(covered) <= set(after_header), "a record outside the data lines"
    blank_chars = "".join(c for c in " \t\r\f\v" if c != opts.delimiter)
    covered_set = set(covered)
    rest = [n for n in after_header if n not in covered_set]
    for n in rest:
        assert not physical[n - 1].strip(blank_chars), f"line {n} dropped"
    r = loaded.result
    assert len(rest) == r.blank_lines
    assert (r.rows, r.rejected) == (len(loaded.all_rows), len(loaded.all_rejects))
    lines = [row[1] for row in loaded.all_rows]
    assert lines == sorted(lines), "rows out of file order"


# --------------------------------------------------------------------------- clean files


def test_clean_file_exact_lines_and_text(con, tmp_path: Path) -> None:
    path = write(tmp_path, "id,name,amount\n1, Ann ,3.50\n2,Bob,\n3,\"Cy, Jr\",-1\n")
    got = load_both(con, path)
    assert got.result == ReadResult(("id", "name", "amount"), 3, 0, 0, "duckdb")
    assert got.columns == ["_source_file", "_source_line", "id", "name", "amount"]
    assert got.all_rows[0][0] == "in.csv"
    # no trimming, no inference; empty -> NULL; quoted delimiter kept
    assert got.rows == [(2, "1", " Ann ", "3.50"), (3, "2", "Bob", None), (4, "3", "Cy, Jr", "-1")]
    assert got.rejects == []


def test_crlf(con, tmp_path: Path) -> None:
    path = write(tmp_path, b'a,b\r\n1,"x"\r\n2,y\r\n\r\n3,"z"\r\n')
    got = load_both(con, path)
    assert got.rows == [(2, "1", "x"), (3, "2", "y"), (5, "3", "z")]
    assert got.result.blank_lines == 1


def test_bom_is_not_part_of_the_first_name(con, tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbfid,name\n1,a\n")
    assert read_header(path, CsvOptions()) == ("id", "name")
    got = load_both(con, path)
    assert got.columns[2] == "id"
    assert got.rows == [(2, "1", "a")]
    sig = load_both(con, path, CsvOptions(encoding="utf-8-sig"))
    assert sig.rows == got.rows


def test_bom_without_header(con, tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbf1,a\n2,b\n")
    got = load_both(con, path, CsvOptions(header=False, column_names=("id", "name")))
    assert got.rows == [(1, "1", "a"), (2, "2", "b")]


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_delimiters(con, tmp_path: Path, delimiter: str) -> None:
    d = delimiter
    path = write(tmp_path, f'a{d}b{d}c\n1{d}"2{d}5"{d}3,5\n')
    got = load_both(con, path, CsvOptions(delimiter=d, decimal_separator=","))
    assert got.rows == [(2, "1", f"2{d}5", "3,5")]  # decimal separator not interpreted here


def test_header_names_are_trimmed_and_quoted_identifiers(con, tmp_path: Path) -> None:
    path = write(tmp_path, ' Store ID ,"sold, at",select,"Qty ""x"""\n1,2,3,4\n')
    got = load_both(con, path)
    assert got.result.columns == ("Store ID", "sold, at", "select", 'Qty "x"')
    assert got.columns[2:] == ["Store ID", "sold, at", "select", 'Qty "x"']


ODD_NAMES = [
    "sku\" || '-INJECTED-' || \"sku",
    'lone " quote',
    "it's",
    "back\\slash\\",
    "naïve 日本 😀",
    "a -- comment",
    "x; DROP TABLE t",
    "RowId",  # hides DuckDB's rowid, which numbers the lines
    "/* c */ `b` [c] {d} ? $1 %s",
    "tab\tinside",
]


def test_header_names_holding_sql_are_just_names(con, tmp_path: Path) -> None:
    header = ",".join('"' + n.replace('"', '""') + '"' for n in ODD_NAMES)
    lines = [",".join(f"{i}-{j}" for j in range(len(ODD_NAMES))) for i in range(4)]
    path = write(tmp_path, "\n".join([header, *lines[:3], "x,y", lines[3], ""]))
    got = load_both(con, path)
    assert got.result.columns == tuple(ODD_NAMES)
    assert got.columns[2:] == ODD_NAMES
    expected = [(n, *line.split(",")) for n, line in zip([2, 3, 4, 6], lines, strict=True)]
    assert got.rows == expected
    assert got.rejects == [(5, "x,y", csv_lines.wrong_count(len(ODD_NAMES), 2))]
    python = load(con, path, force="python")
    assert python.columns[2:] == ODD_NAMES


def test_a_header_with_a_lone_quote_is_read_as_names(con, tmp_path: Path) -> None:
    path = write(tmp_path, 'sku",qty,rowid\nP1,2,a\nP2,3,b\n')
    got = load_both(con, path)
    assert got.result.columns == ('sku"', "qty", "rowid")
    assert got.rows == [(2, "P1", "2", "a"), (3, "P2", "3", "b")]


def test_escape_character(con, tmp_path: Path) -> None:
    path = write(tmp_path, 'a,b\n"say \\"hi\\"",x\\y\n"back\\\\",2\n')
    got = load_both(con, path, CsvOptions(escape="\\"))
    assert got.rows == [(2, 'say "hi"', "x\\y"), (3, "back\\", "2")]


def test_spaces_around_quotes_follow_duckdb(con, tmp_path: Path) -> None:
    path = write(tmp_path, 'a,b,c\n "x", "y" ,"z"  \n  "p",q,r\n')
    got = load_both(con, path)
    assert got.rows == [(2, "x", "y", "z"), (3, '  "p"', "q", "r")]


# --------------------------------------------------------------------------- nulls


def test_null_values(con, tmp_path: Path) -> None:
    path = write(tmp_path, 'a,b,c\nNA,,"NA"\nNULL,"",x\n')
    default = load_both(con, path)
    assert default.rows == [(2, "NA", None, "NA"), (3, "NULL", None, "x")]
    custom = load_both(con, path, CsvOptions(null_values=("NA", "NULL")))
    assert custom.rows == [(2, None, "", None), (3, None, "", "x")]
    none = load_both(con, path, CsvOptions(null_values=()))
    assert none.rows == [(2, "NA", "", "NA"), (3, "NULL", "", "x")]


def test_trailing_null_fields_are_dropped_like_duckdb(con, tmp_path: Path) -> None:
    path = write(tmp_path, "a,b\n1,2,\n3,4,,\n5,6,x\n")
    got = load_both(con, path)
    assert got.rows == [(2, "1", "2"), (3, "3", "4")]
    assert got.rejects == [(4, "5,6,x", "wrong field count: expected 2, found 3")]


# --------------------------------------------------------------------------- multi-line records


def test_quoted_newline_is_one_row_on_its_first_line(con, tmp_path: Path) -> None:
    path = write(tmp_path, 'id,note\n1,"two\nlines"\n2,"three\r\n\nlines"\n3,x\n')
    got = load(con, path)
    assert got.result.reader == "python"  # DuckDB's line count cannot vouch for it
    assert got.rows == [(2, "1", "two\nlines"), (4, "2", "three\r\n\nlines"), (7, "3", "x")]
    assert got.result == ReadResult(("id", "note"), 3, 0, 0, "python")
    assert_accounted(path, CsvOptions(), got)
    with pytest.raises(SourceError, match="DuckDB reader cannot load"):
        load(con, path, force="duckdb")


def test_unbalanced_quote_rejects_only_its_line(con, tmp_path: Path) -> None:
    path = write(tmp_path, 'id,name,qty\n1,a,1\n2,"broken,2\n3,c,3\n4,d,4\n')
    got = load_both(con, path)  # DuckDB reads a copy without line 3
    assert got.rows == [(2, "1", "a", "1"), (4, "3", "c", "3"), (5, "4", "d", "4")]
    assert got.rejects == [(3, '2,"broken,2', "unterminated quote")]


def test_quote_closing_lines_later_with_wrong_field_count(con, tmp_path: Path) -> None:
    # The quote opened on line 3 closes on line 4, but the joined record has 4 fields:
    # only line 3 is rejected, and line 4 is judged on its own.
    path = write(tmp_path, 'a,b,c\n1,2,3\n4,"x,6\n7,8",9,10\n11,12,13\n')
    got = load_both(con, path)
    assert got.rows == [(2, "1", "2", "3"), (5, "11", "12", "13")]
    assert got.rejects == [
        (3, '4,"x,6', "unterminated quote"),
        (4, '7,8",9,10', "wrong field count: expected 3, found 4"),
    ]


def test_unterminated_quote_on_last_line(con, tmp_path: Path) -> None:
    for data in ('a,b\n1,2\n3,"4\n', 'a,b\n1,2\n3,"4'):
        got = load_both(con, write(tmp_path, data))
        assert got.rows == [(2, "1", "2")]
        assert got.rejects == [(3, '3,"4', "unterminated quote")]


@pytest.mark.parametrize(
    ("line", "opts"),
    [
        ('"R1,2', CsvOptions()),  # the quote opens the first field
        ('1, "a ""quoted"" word', CsvOptions()),  # one space before the quote, doubled quotes
        ('5",x,"open', CsvOptions()),  # a quote inside an unquoted field, then an open one
        ('1,"a \\"b\\"', CsvOptions(escape="\\")),  # escaped quotes, no closing one
        ('1,"ends with the escape \\', CsvOptions(escape="\\")),
        ('1;"x', CsvOptions(delimiter=";")),
    ],
)
def test_unterminated_quotes_keep_the_duckdb_path(con, tmp_path: Path, line: str, opts: CsvOptions) -> None:
    # Quoted fields everywhere, so the scan for open quotes has work to do.
    d = opts.delimiter
    good = [f'{i}{d}"v {i}, ok"' for i in range(2, 8)]
    for eol in ("\n", "\r\n"):
        text = eol.join(["a" + d + "b", *good[:3], line, *good[3:], line, ""])
        got = load_both(con, write(tmp_path, text), opts)
        assert got.rejects == [(5, line, "unterminated quote"), (9, line, "unterminated quote")]
        assert [r[0] for r in got.rows] == [2, 3, 4, 6, 7, 8]


def test_unterminated_quote_before_a_multiline_record(con, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, 'a,b\n1,"open\n2,"two\nlines"\n3,x\n')
    with caplog.at_level(logging.INFO, logger="retail_etl.sources.csv_reader"):
        got = load_both(con, path, expect="python")
    assert "line 3 starts a multi-line record" in caplog.text
    assert got.rejects == [(2, '1,"open', "unterminated quote")]
    assert got.rows == [(3, "2", "two\nlines"), (5, "3", "x")]


def test_unterminated_quote_copy_is_temporary(con, tmp_path: Path) -> None:
    # The read-only input is left as it is; the copy DuckDB reads goes to its temp
    # directory (the step's spill space) and is gone after the load.
    spill = tmp_path / "spill"
    spill.mkdir()
    con.execute(f"SET temp_directory = '{spill}'")
    data = b'a,b\n1,2\n"3,4\n5,6\n'
    path = write(tmp_path, data)
    path.chmod(0o444)
    got = load(con, path)
    assert got.result.reader == "duckdb"
    assert got.rejects == [(3, '"3,4', "unterminated quote")]
    assert path.read_bytes() == data
    assert list(spill.iterdir()) == []
    assert sorted(tmp_path.iterdir()) == sorted([path, spill])


def test_unterminated_quote_in_skipped_rows_and_data(con, tmp_path: Path) -> None:
    path = write(tmp_path, 'Report "Q1\nid,v\n1,a\n2,"b\n3,c\n')
    got = load_both(con, path, CsvOptions(skip_rows=1))
    assert got.rows == [(3, "1", "a"), (5, "3", "c")]
    assert got.rejects == [(4, '2,"b', "unterminated quote")]


def test_unterminated_quote_in_single_column_file(con, tmp_path: Path) -> None:
    # DuckDB would read the emptied line as a NULL row.
    got = load_both(con, write(tmp_path, 'sku\nA1\n"B2\nC3\n'), expect="python")
    assert got.rejects == [(3, '"B2', "unterminated quote")]


def test_multiline_record_limit(con, tmp_path: Path) -> None:
    body = "\n".join(f"x{i}" for i in range(csv_lines.MAX_RECORD_LINES + 5))
    path = write(tmp_path, f'a,b\n1,"{body}"\n2,3\n')
    got = load_both(con, path)
    assert got.rejects[0][1:] == ('1,"x0', "unterminated quote")
    assert got.rows[-1] == (csv_lines.MAX_RECORD_LINES + 7, "2", "3")


# --------------------------------------------------------------------------- dirty lines


def test_blank_lines_in_the_middle(con, tmp_path: Path) -> None:
    path = write(tmp_path, "a,b\n1,2\n\n   \n\t\n3,4\n\x0c\n5,6\n\n")
    got = load_both(con, path)
    assert got.rows == [(2, "1", "2"), (6, "3", "4"), (8, "5", "6")]
    assert got.result.blank_lines == 5
    assert got.rejects == []


def test_wrong_field_counts(con, tmp_path: Path) -> None:
    path = write(tmp_path, "a,b,c\n1,2,3\n4,5\n6,7,8,9\nx\n10,11,12\n")
    got = load_both(con, path)
    assert got.rows == [(2, "1", "2", "3"), (6, "10", "11", "12")]
    assert got.rejects == [
        (3, "4,5", "wrong field count: expected 3, found 2"),
        (4, "6,7,8,9", "wrong field count: expected 3, found 4"),
        (5, "x", "wrong field count: expected 3, found 1"),
    ]
    assert got.all_rejects[0][0] == "in.csv"


def test_invalid_utf8_bytes(con, tmp_path: Path) -> None:
    path = write(tmp_path, b"a,b\n1,caf\xc3\xa9\n2,caf\xe9\n3,\xe2\x82\n4,ok\n")
    got = load_both(con, path)
    assert got.rows == [(2, "1", "café"), (5, "4", "ok")]
    assert got.rejects == [
        (3, "2,caf\ufffd", "invalid byte 0xE9 for encoding utf-8"),
        (4, "3,\ufffd", "invalid byte 0xE2 for encoding utf-8"),
    ]


def test_lines_duckdb_merges_after_an_invalid_byte(con, tmp_path: Path) -> None:
    # DuckDB resumes mid-line after the invalid byte: its reject covers the start of line 2
    # and a row the rest of line 2 with line 3, so the line count balances.
    path = write(tmp_path, b'a\tb\tc\td\n\t\xff"\t"\t\t";\t"\n"0"x\t\t\t\n')
    got = load_both(con, path, CsvOptions(delimiter="\t"), expect="python")
    assert got.rows == []
    assert [(r[0], r[2]) for r in got.rejects] == [
        (2, "invalid byte 0xFF for encoding utf-8"),
        (3, "unexpected character after closing quote"),
    ]


def test_junk_after_closing_quote(con, tmp_path: Path) -> None:
    path = write(tmp_path, 'a,b\n"x"y,1\n2,3\n')
    got = load_both(con, path)
    assert got.rejects == [(2, '"x"y,1', "unexpected character after closing quote")]


def test_all_kinds_of_dirt_with_crlf(con, tmp_path: Path) -> None:
    path = write(tmp_path, b'a,b,c\r\n1,2,3\r\n\r\n4,5\r\n6,7,8,9\r\n\xff,1,2\r\n7,8,"9"\r\n  \r\n')
    got = load_both(con, path)
    assert got.rows == [(2, "1", "2", "3"), (7, "7", "8", "9")]
    assert [r[0] for r in got.rejects] == [4, 5, 6]
    assert got.result.blank_lines == 2


def test_line_too_long(con, tmp_path: Path) -> None:
    big = "x" * (csv_lines.MAX_RECORD_BYTES + 10)
    path = write(tmp_path, f"a,b\n1,2\n{big},3\n4,5\n")
    got = load_both(con, path)
    assert got.rows == [(2, "1", "2"), (4, "4", "5")]
    assert [(r[0], r[2]) for r in got.rejects] == [(3, csv_lines.REASON_TOO_LONG)]
    assert len(got.rejects[0][1]) == csv_lines.MAX_RECORD_BYTES


def test_mixed_line_endings_and_stray_cr(con, tmp_path: Path) -> None:
    # DuckDB's strict mode gives up on these files; the Python reader takes them.
    path = write(tmp_path, b'a,b\n1,"2"\r\n3,4\n5\r6,7\n')
    got = load(con, path)
    assert got.result.reader == "python"
    assert got.rows == [(2, "1", "2"), (3, "3", "4"), (4, "5\r6", "7")]


def test_lone_carriage_returns_are_text(con, tmp_path: Path) -> None:
    # DuckDB would silently read "\r1,2" as the row (1, 2): a lone CR sends the file to
    # the Python reader, which keeps it as text.
    path = write(tmp_path, b"a,b\n\r1,2\n3,4\n")
    got = load(con, path)
    assert got.result.reader == "python"
    assert got.rows == [(2, "\r1", "2"), (3, "3", "4")]


def test_cr_only_line_breaks(con, tmp_path: Path) -> None:
    path = write(tmp_path, b"a,b\r1,2\r3,4\r")
    with pytest.raises(SourceError, match="carriage return"):
        read_header(path, CsvOptions())


# --------------------------------------------------------------------------- encodings


def test_latin1(con, tmp_path: Path) -> None:
    path = write(tmp_path, "ville,prix\nSète,1\nZürich,2\n".encode("latin-1"))
    got = load_both(con, path, CsvOptions(encoding="latin-1"))
    assert got.rows == [(2, "Sète", "1"), (3, "Zürich", "2")]
    iso = load_both(con, path, CsvOptions(encoding="ISO-8859-1"))
    assert iso.rows == got.rows


def test_cp1252_goes_through_python(con, tmp_path: Path) -> None:
    path = write(tmp_path, b"item,price\nbook,\x8010\nbad,\x81\nok,1\n")
    got = load(con, path, CsvOptions(encoding="cp1252"))
    assert got.result.reader == "python"
    assert got.rows == [(2, "book", "€10"), (4, "ok", "1")]
    assert got.rejects == [(3, "bad,\ufffd", "invalid byte 0x81 for encoding cp1252")]
    assert_accounted(path, CsvOptions(encoding="cp1252"), got)


def test_utf16_with_bom(con, tmp_path: Path) -> None:
    text = "a,b\r\n1,é\r\n\r\n2\r\n3,€\r\n"
    path = write(tmp_path, text.encode("utf-16"))
    got = load_both(con, path, CsvOptions(encoding="utf-16"))
    assert got.rows == [(2, "1", "é"), (5, "3", "€")]
    assert got.rejects == [(4, "2", "wrong field count: expected 2, found 1")]
    be = write(tmp_path, b"\xfe\xff" + text.encode("utf-16-be"), "be.csv")
    got_be = load(con, be, CsvOptions(encoding="utf-16"))
    assert got_be.result.reader == "python"  # DuckDB reads UTF-16 LE only
    assert (got_be.rows, got_be.rejects) == (got.rows, got.rejects)


def test_unknown_encoding(con, tmp_path: Path) -> None:
    """Refused when the configuration is loaded, and by the reader if handed options that skipped validation."""
    with pytest.raises(ValueError, match="unknown encoding 'klingon'"):
        CsvOptions(encoding="klingon")
    path = write(tmp_path, "a\n1\n")
    with pytest.raises(SourceError, match="unknown encoding"):
        load(con, path, CsvOptions.model_construct(**{**CsvOptions().model_dump(), "encoding": "klingon"}))


# --------------------------------------------------------------------------- header and layout


def test_header_only(con, tmp_path: Path) -> None:
    for data in ("a,b\n", "a,b"):
        got = load_both(con, write(tmp_path, data))
        assert got.result == ReadResult(("a", "b"), 0, 0, 0, "duckdb")
        assert got.columns == ["_source_file", "_source_line", "a", "b"]


def test_empty_file(con, tmp_path: Path) -> None:
    path = write(tmp_path, b"")
    assert read_header(path, CsvOptions()) == ()
    got = load(con, path)
    assert got.result == ReadResult((), 0, 0, 0, "python")
    assert got.columns == ["_source_file", "_source_line"]
    assert got.all_rows == [] and got.all_rejects == []


def test_whitespace_only_file_is_empty(con, tmp_path: Path) -> None:
    path = write(tmp_path, "\n  \r\n\n")
    got = load(con, path)
    assert got.result == ReadResult((), 0, 0, 2, "python")


def test_blank_header_followed_by_data(con, tmp_path: Path) -> None:
    path = write(tmp_path, "\na,b\n1,2\n")
    with pytest.raises(SourceError, match="blank but data follows"):
        read_header(path, CsvOptions())


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("id,name,id", "duplicate column names: id / id"),
        ("Sku,qty,SKU", "duplicate column names: Sku / SKU"),
        ("a,,c", "column 2 has an empty name"),
        ('a,"b,c', "unterminated quote"),
        ('a,"b\nc",d', "unterminated quote"),  # a name holding a line break: a header is one line
        ("a,_source_line", "reserved for lineage"),
    ],
)
def test_bad_header(con, tmp_path: Path, header: str, message: str) -> None:
    path = write(tmp_path, header + "\n1,2,3\n")
    with pytest.raises(SourceError, match=message):
        read_header(path, CsvOptions())
    with pytest.raises(SourceError, match=message):
        load(con, path)
    assert not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 't%'").fetchall()[0][0]


def test_invalid_byte_in_header(tmp_path: Path) -> None:
    path = write(tmp_path, b"a,\xffb\n1,2\n")
    with pytest.raises(SourceError, match="byte 0xFF"):
        read_header(path, CsvOptions())


def test_skip_rows(con, tmp_path: Path) -> None:
    path = write(tmp_path, 'Sales report "Q1\nexported, 2024\n\nid,v\n1,a\n2\n3,c\n')
    opts = CsvOptions(skip_rows=3)
    assert read_header(path, opts) == ("id", "v")
    got = load_both(con, path, opts)
    assert got.rows == [(5, "1", "a"), (7, "3", "c")]
    assert got.rejects == [(6, "2", "wrong field count: expected 2, found 1")]


def test_no_header_with_column_names(con, tmp_path: Path) -> None:
    path = write(tmp_path, "# banner\n1,a\n2,b\n")
    opts = CsvOptions(header=False, column_names=("id", "name"), skip_rows=1)
    assert read_header(path, opts) == ("id", "name")
    got = load_both(con, path, opts)
    assert got.rows == [(2, "1", "a"), (3, "2", "b")]
    assert got.result.columns == ("id", "name")


def test_column_names_override_the_header(con, tmp_path: Path) -> None:
    path = write(tmp_path, "x,y\n1,a\n")
    got = load_both(con, path, CsvOptions(column_names=("id", "name")))
    assert got.result.columns == ("id", "name")
    assert got.rows == [(2, "1", "a")]
    with pytest.raises(SourceError, match="column_names has 3 names but the header has 2"):
        read_header(path, CsvOptions(column_names=("a", "b", "c")))


def test_single_column_file(con, tmp_path: Path) -> None:
    path = write(tmp_path, 'sku\nA1\n""\n\n B \nC3\n')
    got = load(con, path)
    assert got.result.reader == "python"  # DuckDB reads empty lines of 1-column files as rows
    assert got.rows == [(2, "A1"), (3, None), (5, " B "), (6, "C3")]
    assert got.result.blank_lines == 1
    clean = load_both(con, write(tmp_path, "sku\nA1\nB2\n", "clean.csv"))
    assert clean.rows == [(2, "A1"), (3, "B2")]


# --------------------------------------------------------------------------- tables


def test_rejects_table_is_appended(con, tmp_path: Path) -> None:
    a = write(tmp_path, "a,b\n1\n", "a.csv")
    b = write(tmp_path, "a,b\n1,2,3\n", "b.csv")
    load_csv(con, a, CsvOptions(), table="ta", rejects_table="rej", source_file="a.csv")
    load_csv(con, b, CsvOptions(), table="tb", rejects_table="rej", source_file="b.csv")
    assert con.execute("SELECT _source_file, _source_line FROM rej ORDER BY 1").fetchall() == [
        ("a.csv", 2),
        ("b.csv", 2),
    ]


def test_existing_table_is_an_error(con, tmp_path: Path) -> None:
    path = write(tmp_path, "a\n1\n")
    con.execute("CREATE TABLE taken (x INT)")
    for force in (None, "python"):
        with pytest.raises(PermanentError, match="cannot create table"):
            load_csv(con, path, CsvOptions(), table="taken", rejects_table="rej", source_file="x", _force=force)
    assert con.execute("SELECT * FROM taken").fetchall() == []


def test_schema_qualified_tables(con, tmp_path: Path) -> None:
    con.execute("CREATE SCHEMA raw")
    path = write(tmp_path, "a\n1\n")
    load_csv(con, path, CsvOptions(), table="raw.sales", rejects_table="raw.rejects", source_file="x")
    assert con.execute("SELECT _source_line, a FROM raw.sales").fetchall() == [(2, "1")]


def test_no_helper_tables_left_behind(con, tmp_path: Path) -> None:
    load(con, write(tmp_path, "a,b\n1\n2,3\n", "fast.csv"))
    load(con, write(tmp_path, 'a,b\n1,"x\ny"\n4\n', "slow.csv"))
    with pytest.raises(SourceError):
        load(con, write(tmp_path, 'a,b\n"x\ny",2\n', "forced.csv"), force="duckdb")
    names = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
    assert [n for n in names if n.startswith("_retail_etl")] == []
    assert len([n for n in names if n.startswith("t")]) == 2  # the failed load left no table


def test_missing_file(con, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot open"):
        load(con, tmp_path / "nope.csv")


def test_insertion_order_setting_is_restored(con, tmp_path: Path) -> None:
    con.execute("SET preserve_insertion_order = false")
    got = load(con, write(tmp_path, "a,b\n1,x\n2,y\n\n3,z\n"))
    assert got.result.reader == "duckdb"
    assert got.rows == [(2, "1", "x"), (3, "2", "y"), (5, "3", "z")]
    assert con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0] is False


# --------------------------------------------------------------------------- large files


def _big_file(path: Path, n: int, dirt: str = "clean") -> dict[int, str]:
    """n records (plus blank lines); column id holds the physical line number.
    Returns the expected rejects {line: reason}. "broken" is "sparse" plus lines with an
    unterminated quote."""
    blank_every, short_every, broken_every = {
        "clean": (0, 0, 0),
        "sparse": (997, 1499, 0),
        "dense": (2, 5, 0),
        "broken": (997, 1499, 9973),
    }[dirt]
    rejects: dict[int, str] = {}
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("id,store,amount,note\n")
        line = 2
        for i in range(n):
            if blank_every and i % blank_every == 1:
                f.write("\n")
                line += 1
            if short_every and i % short_every == 3:
                f.write(f"{line},short\n")
                rejects[line] = "wrong field count: expected 4, found 2"
            elif broken_every and i % broken_every == 7:
                f.write(f'"{line},S001,1.00,note\n')
                rejects[line] = "unterminated quote"
            elif blank_every == 997 and i % 65536 == 100:  # a run of rejected lines
                for _ in range(3):
                    f.write(f"{line},x,y,z,extra\n")
                    rejects[line] = "wrong field count: expected 4, found 5"
                    line += 1
                continue
            else:
                f.write(f'{line},S{i % 50:03d},{i * 0.25:.2f},"note, {i}"\n')
            line += 1
    return rejects


@pytest.mark.parametrize("dirt", ["clean", "sparse", "dense", "broken"])
def test_large_file_takes_the_duckdb_path(con, tmp_path: Path, dirt: str) -> None:
    path = tmp_path / "big.csv"
    expected_rejects = _big_file(path, 200_000, dirt)
    got = load_csv(con, path, CsvOptions(), table="big", rejects_table="rej", source_file="big.csv")
    assert got.reader == "duckdb"
    wrong = con.execute("SELECT count(*) FROM big WHERE _source_line <> id::BIGINT").fetchall()[0][0]
    assert wrong == 0
    assert con.execute("SELECT count(*), min(rowid), max(rowid) FROM big").fetchall()[0] == (got.rows, 0, got.rows - 1)
    order = con.execute(
        "SELECT count(*) FROM (SELECT _source_line - lag(_source_line) OVER (ORDER BY rowid) AS d FROM big) WHERE d <= 0"
    ).fetchall()[0][0]
    assert order == 0
    rej = dict(con.execute("SELECT _source_line, reason FROM rej").fetchall())
    assert rej == expected_rejects
    with open(path, "rb") as f:
        lines_after_header = sum(1 for _ in f) - 1
    assert got.rows + got.rejected + got.blank_lines == lines_after_header
    assert (got.blank_lines > 0) == (dirt != "clean")


def test_large_dirty_file_both_readers_agree(con, tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    expected_rejects = _big_file(path, 30_000, "broken")
    got = load_both(con, path)
    assert {r[0]: r[2] for r in got.rejects} == expected_rejects
    assert sum(r == "unterminated quote" for r in expected_rejects.values()) == 4


def test_fallback_is_logged(con, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, 'a,b\n1,"x\ny"\n')
    with caplog.at_level(logging.INFO, logger="retail_etl.sources.csv_reader"):
        got = load(con, path)
    assert got.result.reader == "python"
    assert "line 2 starts a multi-line record" in caplog.text
