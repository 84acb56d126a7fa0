"""Read one CSV file into a DuckDB table, losing nothing, with exact line numbers.

Every record becomes one row of text columns (no type inference, no trimming), tagged
with the file it came from and the physical line it starts on. Records that cannot be
parsed go to a rejects table with the raw line and a normalised reason. Nothing is
dropped silently: every physical line after the header is a row's first line, a
continuation line of a multi-line quoted row, a reject, or a blank line.

Two readers, one result:

* **Fast path (DuckDB).** ``read_csv(all_varchar, strict_mode, store_rejects)`` loads the
  file in parallel. A streaming line count in Python then checks that DuckDB accounted
  for every line (rows + rejected lines + empty lines == lines after the header, and no
  record spans lines). When it holds, every record is exactly one physical line, so the
  k-th row comes from the k-th line that is neither empty nor rejected; the line numbers
  are computed inside DuckDB from that short exclusion list. Rejected lines are re-read and judged by the Python reader, so reasons
  (and raw text) are the same as on the recovery path.
* **Unterminated quotes.** One line whose quote never closes would make DuckDB swallow
  the rest of the file. So before DuckDB runs, a byte scan
  (:func:`~retail_etl.sources.csv_lines.find_open_lines`: numpy, and Python only for the
  few lines that may end inside quotes) finds the lines whose quoted field is open at
  their end and judges them with the recovery path's record logic. If one starts a
  multi-line record, the recovery path reads the file. The others are that path's
  ``unterminated quote`` rejects.
* **Wide and long lines.** DuckDB records one reject per extra field, each holding the
  whole line: its cost grows with the square of the line (113 s and 5.6 GiB for one
  400 KB line of 200,000 fields), and a line past ``max_line_size`` with many fields
  does not finish. So a second scan
  (:func:`~retail_etl.sources.csv_lines.find_wide_lines`: numpy counts the delimiters of
  every line) picks the lines with more than ``MAX_EXTRA_FIELDS`` extra fields or longer
  than ``MAX_RECORD_BYTES``, and those the recovery path rejects are its rejects here:
  one per line, raw text kept once (cut to ``MAX_RECORD_BYTES`` characters, as the
  reason says).

  DuckDB then reads a temporary copy of the file with the lines of these two kinds
  emptied (line numbers unchanged), streamed into DuckDB's ``temp_directory`` (the step's
  spill space) or the system temp directory and deleted after the load. The input file
  is only ever read.
* **Recovery path (Python).** :mod:`retail_etl.sources.csv_lines` splits physical lines,
  decodes each one on its own, joins multi-line quoted records and rejects exactly the
  broken lines, streaming rows into DuckDB in Arrow batches. Used when the check fails
  (multi-line records, blank lines DuckDB does not skip, an unterminated quote in a
  UTF-16 file ...), when DuckDB raises, and for encodings DuckDB cannot read (anything
  but UTF-8, Latin-1 and UTF-16 LE with a BOM).

DuckDB 2.0 behaviours this module works around (found while building it):

* blank lines are skipped silently, except in a single-column file (a NULL row each);
  whitespace-only lines are rejected as MISSING COLUMNS (here: blank lines);
* an unterminated quote swallows the rest of the file into one reject;
* after an invalid byte the parser may resume inside the line: a reject then covers the
  start of the line, and a row the rest of it with the next line (the counts balance);
* a line with missing columns yields one reject row per missing column, and its
  ``csv_line`` may start with the preceding blank lines or ``\n``; ``line_byte_position``
  then points at the blank line (not used here: lines are re-read by number);
* extra trailing fields whose values are null strings are dropped, not rejected
  (``1,2,`` is a 2-column row); the Python reader does the same;
* one space before and any spaces after a quoted field are dropped (``1, "a" ,2``);
* ``nullstr`` cannot be an empty list (a sentinel stands for "no null strings");
* mixed line endings or a CR in an unquoted field make strict mode raise, but a CR at the
  start of a line is silently dropped -- so a file with lone CRs takes the Python path;
* a path containing glob characters is read as a glob pattern;
* on a connection, a result left unfetched (``fetchone()``) blocks ``register()`` and
  other statements: everything here runs to completion (``_run``/``_scalar``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from retail_etl.config.model import CsvOptions
from retail_etl.quoting import ident, idents, qualified
from retail_etl.errors import PermanentError, SourceError, TransientError
from retail_etl.sources.csv_lines import (
    BLANK,
    CHUNK_BYTES,
    JUNK,
    MAX_RECORD_BYTES,
    OPEN,
    REJECT,
    ROW,
    UNCLOSED,
    Dialect,
    FileCodec,
    LineScan,
    OpenLine,
    can_find_open_lines,
    can_find_wide_lines,
    classify_line,
    fetch_lines,
    find_open_lines,
    find_wide_lines,
    first_invalid_byte,
    is_blank,
    iter_line_blocks,
    iter_records,
    line_too_long,
    resolve_codec,
    scan_lines,
    strip_bom,
)

log = logging.getLogger(__name__)

LINEAGE_COLUMNS = ("_source_file", "_source_line")
REJECT_COLUMNS = ("_source_file", "_source_line", "raw_line", "reason")
#: Rows per Arrow batch on the recovery path.
BATCH_ROWS = 100_000
#: DuckDB's nullstr cannot be an empty list: this stands for "no null strings".
_NO_NULL = "\x00retail-etl: no null string\x00\n"

Reader = Literal["duckdb", "python"]


@dataclass(frozen=True)
class ReadResult:
    columns: tuple[str, ...]  # header names (or CsvOptions.column_names), in file order
    rows: int  # records loaded into `table`
    rejected: int  # records written to the rejects table
    blank_lines: int  # physical lines that were empty / whitespace-only (not records)
    reader: str  # "duckdb" (fast path) or "python" (recovery path)


@dataclass(frozen=True)
class _Layout:
    """What the header says about a file."""

    names: tuple[str, ...]
    codec: FileCodec
    dialect: Dialect
    first_line: int  # 1-based number of the first physical line after the header
    empty: bool  # no header line (nothing but skipped/blank lines): no records at all


# --------------------------------------------------------------------------- header


def read_header(path: str | Path, opts: CsvOptions) -> tuple[str, ...]:
    """The column names of ``path``: its header line, or ``opts.column_names``.

    Reads only up to the header line. A UTF-8 BOM is dropped and names are trimmed.
    Raises SourceError for an unreadable header: invalid bytes, an unbalanced quote,
    an empty or duplicate name (DuckDB names are case-insensitive), a blank header line
    followed by data, or names clashing with the lineage columns. An empty file (or one
    with nothing but blank lines from the header position on) has no columns: ``()``.
    """
    return _read_layout(Path(path), opts).names


def _read_layout(path: Path, opts: CsvOptions) -> _Layout:
    dialect = Dialect(opts.delimiter, opts.quote, opts.escape)
    with _open(path) as f:
        fc = _codec(path, opts, f.read(4))
        first_line = opts.skip_rows + (2 if opts.header else 1)
        if not opts.header:
            assert opts.column_names is not None  # guaranteed by CsvOptions
            return _Layout(_check_names(path, opts.column_names, "column_names"), fc, dialect, first_line, False)
        header_no = opts.skip_rows + 1
        blocks = iter_line_blocks(f, fc, chunk_bytes=1 << 16)
        line: str | None = None
        rest: list[str] = []
        for first, lines, _ in blocks:
            if first + len(lines) > header_no:
                line = lines[header_no - first]
                rest = lines[header_no - first + 1 :]
                break
        if line is None:
            return _Layout((), fc, dialect, first_line, True)
        where = f"header (line {header_no})"
        body = line[:-1] if line.endswith("\r") else line
        if line_too_long(line, fc):
            raise SourceError(f"{where} is longer than {MAX_RECORD_BYTES} bytes", path=str(path))
        if is_blank(body, dialect):
            if all(is_blank(s.rstrip("\r"), dialect) for s in rest) and all(
                is_blank(s.rstrip("\r"), dialect) for _, lines, _ in blocks for s in lines
            ):
                return _Layout((), fc, dialect, first_line, True)
            raise SourceError(
                f"{where} is blank but data follows",
                path=str(path),
                hint="set csv.skip_rows to the number of lines before the header",
            )
        if "\r" in body:
            raise SourceError(
                f"{where} holds a carriage return",
                path=str(path),
                hint="the file may use old Mac (CR-only) line breaks: convert it to LF or CRLF",
            )
        bad = first_invalid_byte(body)
        if bad is not None:
            raise SourceError(
                f"{where} has byte 0x{bad:02X}, invalid in encoding {opts.encoding}",
                path=str(path),
                hint="set csv.encoding to the file's encoding (e.g. cp1252, latin-1, utf-16)",
            )
        fields, status, _ = dialect.parse(body)
        if status == OPEN:
            raise SourceError(
                f"{where} has an unterminated quote ({opts.quote}); a header must be one line",
                path=str(path),
                hint="check csv.quote, or fix the header line",
            )
        if status == JUNK:
            raise SourceError(
                f"{where} has a character after a closing quote ({opts.quote})", path=str(path)
            )
        names = tuple(n.strip() for n in [strip_bom(fields[0]), *fields[1:]])
    if opts.column_names is not None:
        if len(opts.column_names) != len(names):
            raise SourceError(
                f"csv.column_names has {len(opts.column_names)} names but the header has {len(names)} columns",
                path=str(path),
                hint="drop column_names to use the header, or list one name per header column",
            )
        return _Layout(_check_names(path, opts.column_names, "column_names"), fc, dialect, first_line, False)
    return _Layout(_check_names(path, names, where), fc, dialect, first_line, False)


def _check_names(path: Path, names: tuple[str, ...], where: str) -> tuple[str, ...]:
    for i, name in enumerate(names, 1):
        if not name:
            raise SourceError(
                f"{where}: column {i} has an empty name",
                path=str(path),
                hint="name every column (or set header: false with column_names: [...])",
            )
    seen: dict[str, list[str]] = {}
    for name in names:
        seen.setdefault(name.casefold(), []).append(name)
    dups = [" / ".join(v) for v in seen.values() if len(v) > 1]
    if dups:
        raise SourceError(
            f"{where}: duplicate column names: {', '.join(dups)}",
            path=str(path),
            hint="column names must be unique (ignoring case); rename them or set column_names",
        )
    clash = [n for n in names if n.casefold() in LINEAGE_COLUMNS]
    if clash:
        raise SourceError(f"{where}: column names reserved for lineage: {', '.join(clash)}", path=str(path))
    return tuple(names)


def _codec(path: Path, opts: CsvOptions, head: bytes) -> FileCodec:
    try:
        return resolve_codec(opts.encoding, head)
    except LookupError:
        raise SourceError(
            f"unknown encoding {opts.encoding!r}", path=str(path), hint="use a Python codec name, e.g. utf-8, cp1252"
        ) from None


@contextmanager
def _open(path: Path) -> Iterator[BinaryIO]:
    try:
        f = open(path, "rb")  # noqa: SIM115
    except (FileNotFoundError, IsADirectoryError, PermissionError, NotADirectoryError) as e:
        raise SourceError(f"cannot open: {e.strerror or e}", path=str(path)) from None
    except OSError as e:
        raise TransientError(f"{path}: cannot open: {e}") from e
    with f:
        try:
            yield f
        except OSError as e:
            raise TransientError(f"{path}: read failed: {e}") from e


# --------------------------------------------------------------------------- load


def load_csv(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    opts: CsvOptions,
    *,
    table: str,
    rejects_table: str,
    source_file: str,
    _force: Reader | None = None,
) -> ReadResult:
    """Load ``path`` into a new DuckDB table ``table`` (``name`` or ``schema.name``).

    ``table`` gets ``_source_file VARCHAR, _source_line BIGINT`` and one VARCHAR column per
    CSV column, rows in file order; records that cannot be parsed are appended to
    ``rejects_table`` (created when missing) as ``_source_file, _source_line, raw_line,
    reason``. ``_force`` picks a reader (tests): "python" always works; "duckdb" raises
    SourceError when the fast path cannot vouch for its result.
    """
    path = Path(path)
    qt, qr = _qualified(table), _qualified(rejects_table)
    layout = _read_layout(path, opts)
    _ensure_rejects_table(con, qr, rejects_table)

    if layout.empty:
        _create_table(con, qt, table, layout.names)
        blanks = _count_lines_from(path, layout)
        return ReadResult(layout.names, 0, 0, blanks, "python")

    if _force != "python":
        result: ReadResult | str
        if layout.codec.duckdb is None:
            result = f"DuckDB cannot read encoding {opts.encoding}"
        elif _is_glob(path):
            result = "DuckDB would read the file name as a glob pattern"
        else:
            result = _load_duckdb(con, path, opts, layout, qt, qr, source_file)
        if isinstance(result, ReadResult):
            return result
        if _force == "duckdb":
            raise SourceError(f"the DuckDB reader cannot load this file: {result}", path=str(path))
        log.info("%s: reading with the Python reader: %s", path, result)
    return _load_python(con, path, opts, layout, qt, qr, source_file)


def _load_duckdb(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    opts: CsvOptions,
    layout: _Layout,
    qt: str,
    qr: str,
    source_file: str,
) -> ReadResult | str:
    """The fast path. Returns why it does not apply (a message) instead of a result when
    DuckDB's reading cannot be vouched for; the table is then not left behind."""
    fc, names = layout.codec, layout.names
    with _open(path) as f:
        scan = scan_lines(f, fc)
    if scan.lone_cr:
        return f"{scan.lone_cr} carriage return(s) not ending a line (DuckDB may read them as line breaks)"
    excluded = _excluded_lines(path, opts, layout)
    if isinstance(excluded, str):
        return excluded
    first = layout.first_line
    n_lines = max(scan.total - first + 1, 0)
    empty = scan.empty[scan.empty >= first]
    # Lines empty in the file DuckDB reads: the excluded lines are emptied in its copy.
    read_empty = np.union1d(empty, np.array([u.line for u in excluded], dtype=np.int64))
    if len(names) == 1 and len(read_empty):
        return "a single-column file with empty or excluded lines (DuckDB reads empty lines as NULL rows)"

    source = path
    if excluded:
        copy = _copy_without(con, path, excluded)
        if isinstance(copy, str):
            return copy
        source = copy
    tag = uuid.uuid4().hex[:12]
    rej_tab, scan_tab = f"_retail_etl_rejects_{tag}", f"_retail_etl_scans_{tag}"
    # A column named rowid would hide DuckDB's row ids, which number the lines: it is loaded
    # under another name, renamed once the lines are numbered.
    loaded = tuple(f"_retail_etl_{tag}_{i}" if n.casefold() == "rowid" else n for i, n in enumerate(names))
    sql = f"""
        CREATE TABLE {qt} AS
        SELECT ?::VARCHAR AS _source_file, NULL::BIGINT AS _source_line, *
        FROM read_csv(?, columns = ?, all_varchar = true, auto_detect = false, hive_partitioning = false,
                      header = ?, skip = ?, delim = ?, quote = ?, escape = ?,
                      nullstr = ?::VARCHAR[], encoding = ?, strict_mode = true,
                      max_line_size = ?, store_rejects = true, rejects_table = ?, rejects_scan = ?)
    """
    params = [
        source_file,
        str(source),
        dict.fromkeys(loaded, "VARCHAR"),
        opts.header,
        opts.skip_rows,
        opts.delimiter,
        opts.quote,
        opts.escape,
        list(opts.null_values) or [_NO_NULL],
        fc.duckdb,
        MAX_RECORD_BYTES,
        rej_tab,
        scan_tab,
    ]
    created = False
    try:
        with _insertion_order(con):
            try:
                _run(con, sql, params)
                created = True
            except duckdb.CatalogException as e:  # the table exists, or its schema does not
                raise PermanentError(f"cannot create table {qt}: {e}") from None
            except duckdb.InterruptException:
                raise
            except duckdb.Error as e:
                return f"DuckDB failed: {str(e).splitlines()[0]}"
            outcome = _vouch(con, path, opts, layout, loaded, qt, rej_tab, scan, read_empty, n_lines)
            if isinstance(outcome, str):
                return outcome
            rows, rejects, blank_ws = outcome
            rejects += [(u.line, u.text, u.reason) for u in excluded]
            skipped = np.array([r[0] for r in rejects] + blank_ws, dtype=np.int64)
            _number_lines(con, qt, rows, first, np.union1d(read_empty, skipped))
            for column, name in zip(loaded, names, strict=True):
                if column != name:
                    _run(con, f"ALTER TABLE {qt} RENAME COLUMN {ident(column)} TO {ident(name)}")
            _insert_rejects(con, qr, source_file, rejects)
        result = ReadResult(names, rows, len(rejects), len(empty) + len(blank_ws), "duckdb")
        created = False  # keep the table
        return result
    finally:
        for tmp in (rej_tab, scan_tab):
            _run(con, f"DROP TABLE IF EXISTS {ident(tmp)}")
        if created:
            _run(con, f"DROP TABLE IF EXISTS {qt}")
        if source != path:
            source.unlink(missing_ok=True)


def _excluded_lines(path: Path, opts: CsvOptions, layout: _Layout) -> list[OpenLine] | str:
    """The lines DuckDB must not read, each a reject of the Python reader, or why the fast
    path does not apply.

    * ``unterminated quote`` lines: DuckDB would swallow the rest of the file into one
      reject. A quoted field spanning lines (a multi-line record) is for the Python reader.
      Files this cannot scan as bytes (UTF-16) are left to the line count check.
    * lines with many more fields than the header, or too long: DuckDB records one reject
      per extra field, each holding the whole line, which grows with the square of the
      line's length (minutes and gigabytes for one 400 KB line of 200,000 fields).
    """
    ncols, nulls = len(layout.names), frozenset(opts.null_values)
    if not can_find_wide_lines(layout.codec, layout.dialect):
        return f"the fields of encoding {opts.encoding} with delimiter {opts.delimiter!r} cannot be counted as bytes"
    found: list[OpenLine] | int = []
    if can_find_open_lines(layout.codec, layout.dialect):
        with _open(path) as f:
            found = find_open_lines(f, layout.codec, layout.dialect, ncols, first_line=layout.first_line, nulls=nulls)
        if isinstance(found, int):
            return f"line {found} starts a multi-line record"
    with _open(path) as f:
        wide = find_wide_lines(f, layout.codec, layout.dialect, ncols, first_line=layout.first_line, nulls=nulls)
    return sorted([*found, *wide], key=lambda u: u.line)


def _copy_without(con: duckdb.DuckDBPyConnection, path: Path, lines: list[OpenLine]) -> Path | str:
    """A temporary copy of ``path`` with ``lines`` emptied (their terminators kept: line
    numbers do not change), streamed into DuckDB's temp directory -- the caller's spill
    space -- or the system's. Returns why not when it cannot be written."""
    spill = str(_scalar(con, "SELECT current_setting('temp_directory')"))
    folder = os.path.abspath(spill) if os.path.isdir(spill) else None
    try:
        fd, name = tempfile.mkstemp(prefix="retail_etl_", suffix=".csv", dir=folder)
    except OSError as e:
        return f"cannot write a copy without the excluded lines: {e}"
    copy = Path(name)
    try:
        with open(fd, "wb") as out, open(path, "rb") as src:
            for line in lines:
                _copy_bytes(src, out, line.start - src.tell())
                src.seek(line.end)
            shutil.copyfileobj(src, out, CHUNK_BYTES)
    except OSError as e:
        copy.unlink(missing_ok=True)
        return f"cannot write a copy without the excluded lines: {e}"
    if _is_glob(copy):
        copy.unlink()
        return "DuckDB would read the name of the temporary copy as a glob pattern"
    return copy


def _copy_bytes(src: BinaryIO, out: BinaryIO, n: int) -> None:
    while n > 0 and (b := src.read(min(n, CHUNK_BYTES))):
        out.write(b)
        n -= len(b)


def _vouch(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    opts: CsvOptions,
    layout: _Layout,
    columns: tuple[str, ...],
    qt: str,
    rej_tab: str,
    scan: LineScan,
    empty: np.ndarray,
    n_lines: int,
) -> tuple[int, list[tuple[int, str, str]], list[int]] | str:
    """Check DuckDB's load against the line count; judge its rejected lines.

    ``columns`` are the CSV columns as loaded into ``qt``; ``empty`` are the lines empty in the
    file DuckDB read. Returns ``(rows, rejects,
    whitespace_lines)`` or why the load cannot be trusted.
    """
    rows = _scalar(con, f"SELECT count(*) FROM {qt}")
    rej = con.execute(
        f"""SELECT line, bool_or(contains(trim(csv_line, chr(13) || chr(10)), chr(10)))
            FROM {ident(rej_tab)} GROUP BY line ORDER BY line"""
    ).fetchall()
    if any(multi for _, multi in rej):
        return "a rejected record spans several lines"
    if rows + len(rej) + len(empty) != n_lines:
        return (
            f"line count check failed: {rows} rows + {len(rej)} rejected + {len(empty)} empty lines"
            f" != {n_lines} lines after the header (multi-line records or lines DuckDB merged)"
        )
    lines = [int(r[0]) for r in rej]
    if lines and (lines[0] < layout.first_line or lines[-1] > scan.total or np.isin(lines, empty).any()):
        return "DuckDB reported rejects on unexpected lines"
    if lines and _merged_after(con, qt, layout, columns, lines, empty):
        return "DuckDB merged the end of a rejected line with the next line"
    if len(columns) == 1:
        col = ident(columns[0])
        if _scalar(con, f"SELECT count(*) FROM {qt} WHERE trim({col}, ?) = ''", [layout.dialect.blank_chars]):
            return "a single-column file with blank values (whitespace-only lines are not records)"
    with _open(path) as f:
        texts = fetch_lines(f, layout.codec, lines)
    rejects: list[tuple[int, str, str]] = []
    blank_ws: list[int] = []
    ncols = len(layout.names)
    nulls = frozenset(opts.null_values)
    for n in lines:
        if n not in texts:
            return f"line {n}, rejected by DuckDB, is missing from the file"
        kind, raw, reason = classify_line(texts[n], layout.dialect, ncols, layout.codec, nulls)
        if kind == BLANK:
            blank_ws.append(n)
        elif kind == REJECT:
            rejects.append((n, raw, reason))
        elif kind == UNCLOSED:
            return f"line {n} has an unterminated quote"
        else:
            assert kind == ROW
            return f"DuckDB rejected line {n}, which the Python reader accepts"
    return rows, rejects, blank_ws


def _merged_after(
    con: duckdb.DuckDBPyConnection,
    qt: str,
    layout: _Layout,
    columns: tuple[str, ...],
    lines: list[int],
    empty: np.ndarray,
) -> bool:
    """Whether a row right after a rejected line holds a line break.

    After an error DuckDB may resume inside the line: its reject then covers the start of
    the line, and a row the rest of it with the next line -- the line count balances.
    Elsewhere DuckDB splits lines as the Python reader does (the premise of the fast
    path), so a row spanning lines would unbalance the count: no need to scan every row.
    """
    excluded = np.union1d(empty, lines)
    rowids = np.asarray(lines) - layout.first_line - np.searchsorted(excluded, lines)  # rows before each line
    breaks = " OR ".join(f"contains({ident(n)}, chr(10))" for n in columns)
    sql = f"SELECT count(*) FROM {qt} WHERE rowid IN (SELECT unnest(?::BIGINT[])) AND ({breaks})"
    return bool(con.execute(sql, [rowids.tolist()]).fetchall()[0][0])


def _number_lines(con: duckdb.DuckDBPyConnection, qt: str, rows: int, first: int, excluded: np.ndarray) -> None:
    """Set ``_source_line`` of the k-th row (rowid order) to the k-th line from ``first``
    on that is not in ``excluded`` (sorted line numbers of empty and rejected lines).

    With e_0 < e_1 < ... excluded, key_i = e_i - first - i is how many rows precede e_i;
    row k sits ``#{i: key_i <= k}`` lines further than ``first + k``. The count is looked
    up per block of B rows (an equality join on rowid // B, keeping DuckDB's parallel
    update) plus a short in-block list for blocks holding keys.
    """
    if rows == 0:
        return
    keys = excluded.astype(np.int64) - first - np.arange(len(excluded), dtype=np.int64)
    keys = keys[keys < rows]
    if len(keys) == 0:
        _run(con, f"UPDATE {qt} SET _source_line = rowid + ?", [first])
        return
    uniq = np.unique(keys)
    cum = np.searchsorted(keys, uniq, side="right").astype(np.int64)  # #keys <= uniq[j]
    block = 1 << int(np.clip(np.floor(np.log2(max(8 * rows / len(uniq), 1))), 6, 20))
    nblocks = (rows + block - 1) // block
    bounds = np.arange(nblocks + 1, dtype=np.int64) * block
    base = np.searchsorted(keys, bounds[:-1], side="left").astype(np.int64)
    offsets = np.searchsorted(uniq, bounds, side="left").astype(np.int64)
    blk = pa.table(
        {
            "b": pa.array(np.arange(nblocks, dtype=np.int64)),
            "base": pa.array(base),
            "ks": pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(uniq)),
            "cs": pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(cum)),
        }
    )
    name = f"_retail_etl_blocks_{uuid.uuid4().hex[:12]}"
    con.register(name, blk)
    try:
        _run(
            con,
            f"""UPDATE {qt} SET _source_line = {qt}.rowid + ?
                    + coalesce(k.cs[len(list_filter(k.ks, lambda x: x <= {qt}.rowid))], k.base)
                FROM {ident(name)} AS k WHERE k.b = {qt}.rowid // ?""",
            [first, block],
        )
    finally:
        con.unregister(name)


def _load_python(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    opts: CsvOptions,
    layout: _Layout,
    qt: str,
    qr: str,
    source_file: str,
) -> ReadResult:
    """The recovery path: csv_lines parses, DuckDB receives Arrow batches."""
    names = layout.names
    ncols = len(names)
    nulls = pa.array(sorted(set(opts.null_values)), pa.string())
    null_str = pa.scalar(None, pa.string())
    tag = uuid.uuid4().hex[:12]
    batch_name = f"_retail_etl_batch_{tag}"
    staging = ident(f"_retail_etl_rejects_{tag}")
    _create_table(con, qt, qt, names)
    _run(con, f"CREATE TEMP TABLE {staging} (_source_line BIGINT, raw_line VARCHAR, reason VARCHAR)")
    done = False
    n_rows = n_rejects = n_blank = 0

    def push(target: str, table: pa.Table, select: str, *params: object) -> None:
        """``INSERT INTO target <select> FROM`` the Arrow ``table``."""
        con.register(batch_name, table)
        try:
            _run(con, f"INSERT INTO {target} {select} FROM {ident(batch_name)}", list(params))
        finally:
            con.unregister(batch_name)

    def flush_rows(values: list[str], lines: list[int]) -> None:
        cols = {"_source_line": pa.array(lines, pa.int64())}
        for i in range(ncols):
            arr = pa.array(values[i::ncols], pa.string())
            if len(nulls):
                arr = pc.if_else(pc.is_in(arr, value_set=nulls), null_str, arr)
            cols[f"c{i}"] = arr
        push(qt, pa.table(cols), "SELECT ?::VARCHAR, *", source_file)

    def flush_rejects(rej: list[tuple[int, str, str]]) -> None:
        lines, raws, reasons = (list(c) for c in zip(*rej, strict=True))
        tbl = pa.table(
            {
                "_source_line": pa.array(lines, pa.int64()),
                "raw_line": pa.array(raws, pa.string()),
                "reason": pa.array(reasons, pa.string()),
            }
        )
        push(staging, tbl, "SELECT *")

    try:
        with _open(path) as f:
            batches = iter_records(
                iter_line_blocks(f, layout.codec, CHUNK_BYTES),
                layout.dialect,
                ncols,
                layout.codec,
                first_line=layout.first_line,
                nulls=frozenset(opts.null_values),
                batch_rows=BATCH_ROWS,
            )
            for batch in batches:
                if batch.lines:
                    flush_rows(batch.values, batch.lines)
                    n_rows += len(batch.lines)
                if batch.rejects:
                    flush_rejects(batch.rejects)
                    n_rejects += len(batch.rejects)
                n_blank += batch.blanks
        _run(
            con,
            f"INSERT INTO {qr} ({idents(REJECT_COLUMNS)}) "
            f"SELECT ?::VARCHAR, _source_line, raw_line, reason FROM {staging} ORDER BY _source_line",
            [source_file],
        )
        done = True
    finally:
        _run(con, f"DROP TABLE IF EXISTS {staging}")
        if not done:
            _run(con, f"DROP TABLE IF EXISTS {qt}")
    return ReadResult(names, n_rows, n_rejects, n_blank, "python")


# --------------------------------------------------------------------------- helpers


def _count_lines_from(path: Path, layout: _Layout) -> int:
    """Physical lines from ``layout.first_line`` on (all blank when the layout is empty)."""
    with _open(path) as f:
        return max(scan_lines(f, layout.codec).total - layout.first_line + 1, 0)


def _insert_rejects(
    con: duckdb.DuckDBPyConnection, qr: str, source_file: str, rejects: list[tuple[int, str, str]]
) -> None:
    if not rejects:
        return
    lines, raws, reasons = zip(*rejects, strict=True)
    tbl = pa.table(
        {
            "_source_line": pa.array(lines, pa.int64()),
            "raw_line": pa.array(raws, pa.string()),
            "reason": pa.array(reasons, pa.string()),
        }
    )
    name = f"_retail_etl_rejects_{uuid.uuid4().hex[:12]}"
    con.register(name, tbl)
    try:
        _run(
            con,
            f"INSERT INTO {qr} ({idents(REJECT_COLUMNS)}) "
            f"SELECT ?::VARCHAR, _source_line, raw_line, reason FROM {ident(name)} ORDER BY _source_line",
            [source_file],
        )
    finally:
        con.unregister(name)


@contextmanager
def _insertion_order(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """rowid must follow file order: make sure DuckDB preserves insertion order."""
    current = _scalar(con, "SELECT current_setting('preserve_insertion_order')")
    if current in (True, "true"):
        yield
        return
    _run(con, "SET preserve_insertion_order = true")
    try:
        yield
    finally:
        _run(con, "SET preserve_insertion_order = false")


def _run(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> None:
    """Execute a statement to its end (DuckDB 2 refuses other work on a connection with
    an unfinished result)."""
    con.execute(sql, params)
    con.complete()


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> object:
    """The single value of a query. (fetchone() would leave the result open, and DuckDB 2
    refuses other work on a connection with an unfinished result.)"""
    return con.execute(sql, params).fetchall()[0][0]


def _ensure_rejects_table(con: duckdb.DuckDBPyConnection, qr: str, name: str) -> None:
    _run(
        con,
        f"CREATE TABLE IF NOT EXISTS {qr} "
        "(_source_file VARCHAR, _source_line BIGINT, raw_line VARCHAR, reason VARCHAR)"
    )
    try:
        _run(con, f"SELECT {idents(REJECT_COLUMNS)} FROM {qr} LIMIT 0")
    except duckdb.Error:
        raise PermanentError(
            f"rejects table {name} exists without the columns {', '.join(REJECT_COLUMNS)}",
            hint="drop it or choose another rejects table",
        ) from None


def _create_table(con: duckdb.DuckDBPyConnection, qt: str, table: str, names: tuple[str, ...]) -> None:
    """Create the target table; it must not exist. (No SELECT-based existence probe: an
    unknown name in a query would fall through to DuckDB's Python replacement scans.)"""
    try:
        _run(con, f"CREATE TABLE {qt} ({_column_defs(names)})")
    except duckdb.CatalogException as e:
        raise PermanentError(
            f"cannot create table {table}: {e}", hint="load_csv creates its table: drop it or choose another name"
        ) from None


def _column_defs(names: tuple[str, ...]) -> str:
    return ", ".join(["_source_file VARCHAR", "_source_line BIGINT", *(f"{ident(n)} VARCHAR" for n in names)])


def _qualified(table: str) -> str:
    """``name`` or ``schema.name`` (or ``catalog.schema.name``) as quoted identifiers."""
    parts = table.split(".")
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise PermanentError(f"invalid table name {table!r}")
    return qualified(*parts)


def _is_glob(path: str | Path) -> bool:
    return any(c in str(path) for c in "*?[{")


__all__ = ["LINEAGE_COLUMNS", "REJECT_COLUMNS", "ReadResult", "load_csv", "read_header"]
