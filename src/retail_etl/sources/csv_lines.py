"""Physical lines and CSV records, in pure Python (no DuckDB).

This is the reference reader used by :mod:`retail_etl.sources.csv_reader`: its recovery
path parses whole files with it, and its fast path uses it to check and describe the
lines DuckDB rejected, and to find beforehand the lines it rejects as ``unterminated
quote`` (:func:`find_open_lines`, a byte scan that applies the same record logic to the
few lines that may end inside quotes) or that DuckDB would read at a cost growing with
the square of the line, lines with very many fields or too long (:func:`find_wide_lines`,
a count of delimiters per line). Everything here works on *physical lines*: text
between two ``\\n`` bytes (a ``\\r`` before the ``\\n`` belongs to the line terminator).

Decoding never fails. Bytes that are invalid in the file's encoding are decoded to marker
characters (lone surrogates U+DC00..U+DCFF, which no valid decode can produce); a line
holding a marker is rejected with ``invalid byte 0xNN for encoding <enc>``.

Field splitting follows DuckDB's ``read_csv(strict_mode=true)`` so both readers agree:

* a quoted field may be preceded by ONE space and followed by any number of spaces;
  the spaces are dropped (``1, "a" ,2`` -> ``a``); two leading spaces make the field
  unquoted text;
* a quote inside an unquoted field is an ordinary character (``5"`` -> ``5"``);
* with ``escape == quote`` a doubled quote inside quotes is one quote; otherwise the
  escape character takes the next character literally inside quotes (and is an ordinary
  character outside quotes);
* a closing quote followed by anything but spaces and the delimiter is an error
  (``unexpected character after closing quote``); a quote still open at the end of the
  text is ``unterminated quote``;
* extra trailing fields that are all null strings are dropped (``1,2,`` has 2 fields
  when ``""`` is a null string); other extra or missing fields reject the record.

Blank lines (empty, or only spaces, tabs, CR, FF, VT -- the delimiter excepted) are not
records. A CR that does not end a line is text.
"""

from __future__ import annotations

import codecs
import re
from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import BinaryIO, Final

import numpy as np

#: A physical line (bytes including its terminator) or a joined multi-line record larger
#: than this is rejected. Also given to DuckDB as ``max_line_size``.
MAX_RECORD_BYTES: Final = 1 << 20
#: A multi-line quoted record may span at most this many physical lines.
MAX_RECORD_LINES: Final = 1000
#: A line with more fields than this beyond the expected ones is kept away from DuckDB's reader,
#: which records one reject per extra field, each holding the whole line (:func:`find_wide_lines`).
MAX_EXTRA_FIELDS: Final = 16
#: Read size of every streaming pass.
CHUNK_BYTES: Final = 1 << 22

_MARK_ERRORS: Final = "retail_etl.mark"
_MARK_RE: Final = re.compile("[\udc00-\udcff]+")

# Record parse outcomes.
OK: Final = 0
OPEN: Final = 1  # a quoted field is still open at the end of the text
JUNK: Final = 2  # something other than spaces/the delimiter follows a closing quote

# What classify_line finds a line to be.
ROW: Final = 10
REJECT: Final = 11
BLANK: Final = 12
UNCLOSED: Final = 13  # classify_line only: the line ends inside a quoted field

REASON_UNTERMINATED: Final = "unterminated quote"
REASON_JUNK: Final = "unexpected character after closing quote"
REASON_TOO_LONG: Final = (
    f"line too long: more than {MAX_RECORD_BYTES} bytes; raw_line keeps its first {MAX_RECORD_BYTES} characters"
)


_marks_made = [0]  # calls of _mark: a decode that did not change it met no invalid byte


def _mark(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    _marks_made[0] += 1
    bad = exc.object[exc.start : exc.end]
    return "".join(chr(0xDC00 + b) for b in bad), exc.end


codecs.register_error(_MARK_ERRORS, _mark)


# --------------------------------------------------------------------------- encodings


@dataclass(frozen=True)
class FileCodec:
    """How to decode one file.

    ``codec`` decodes the bytes after the byte-order mark (``bom_len`` bytes); it is
    stateless (endianness resolved), so a single line re-encodes to its original bytes.
    ``duckdb`` is the name DuckDB's reader knows this encoding by, or None.
    """

    label: str
    codec: str
    bom_len: int
    ascii_compatible: bool
    duckdb: str | None
    max_bytes_per_char: int


_BOMS: Final = {
    "utf-32": ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be")),
    "utf-16": ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")),
}


def resolve_codec(encoding: str, head: bytes) -> FileCodec:
    """Resolve ``encoding`` (any Python codec name) for a file starting with ``head``.

    Raises LookupError for an unknown encoding.
    """
    name = codecs.lookup(encoding).name  # normalised: 'utf-8', 'iso8859-1', 'cp1252', ...
    label = encoding
    if name in ("utf-8", "utf-8-sig"):
        bom = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
        return FileCodec(label, "utf-8", bom, True, "utf-8", 4)
    if name in ("utf-16", "utf-32"):
        for bom, codec in _BOMS[name]:
            if head.startswith(bom):
                break
        else:
            bom, codec = b"", f"{name}-le"
        native = "utf-16" if codec == "utf-16-le" and bom else None
        return FileCodec(label, codec, len(bom), False, native, 4)
    if name in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
        bom = codecs.BOM_UTF16_LE if name == "utf-16-le" else None
        native = "utf-16" if bom is not None and head.startswith(bom) else None
        skip = len(bom) if native else 0
        return FileCodec(label, name, skip, False, native, 4)
    ascii_ok = "a,\"\n\r b;\t'".encode(name, errors="strict") == b"a,\"\n\r b;\t'"
    width = max(len(c.encode(name, errors="replace")) for c in "a\u00e9\u20ac\U0001f600")
    native = "latin-1" if name == "iso8859-1" else None
    return FileCodec(label, name, 0, ascii_ok and name != "utf-7", native, max(width, 1))


def first_invalid_byte(line: str) -> int | None:
    """The first byte of ``line`` that did not decode, or None."""
    m = _MARK_RE.search(line)
    return None if m is None else ord(m.group()[0]) - 0xDC00


def raw_bytes(line: str, fc: FileCodec) -> bytes:
    """The original bytes of a decoded line (markers turned back into their bytes)."""
    out: list[bytes] = []
    pos = 0
    for m in _MARK_RE.finditer(line):
        out.append(line[pos : m.start()].encode(fc.codec))
        out.append(bytes(ord(c) - 0xDC00 for c in m.group()))
        pos = m.end()
    out.append(line[pos:].encode(fc.codec))
    return b"".join(out)


def raw_text(line: str, fc: FileCodec) -> str:
    """``line`` as valid text: its original bytes decoded with errors='replace'."""
    if _MARK_RE.search(line) is None:
        return line
    return raw_bytes(line, fc).decode(fc.codec, errors="replace")


def line_too_long(line: str, fc: FileCodec) -> bool:
    """True when the physical line, with its ``\\n``, is over MAX_RECORD_BYTES bytes."""
    n = len(line)
    if n < MAX_RECORD_BYTES // fc.max_bytes_per_char:
        return False
    if n >= MAX_RECORD_BYTES:
        return True
    return len(raw_bytes(line, fc)) + 1 > MAX_RECORD_BYTES


# --------------------------------------------------------------------------- lines


def iter_line_blocks(
    f: BinaryIO, fc: FileCodec, chunk_bytes: int = CHUNK_BYTES, *, start: int | None = None
) -> Iterator[tuple[int, list[str], bool]]:
    """Yield ``(number of the first line, lines, has_invalid_bytes)`` blocks.

    Reads from the start of the file, or from byte offset ``start`` (the start of a line,
    in an ASCII-compatible encoding; line numbers then count from there). Lines have no
    ``\\n`` (a ``\\r`` before it is kept); a line longer than MAX_RECORD_BYTES characters is
    cut to MAX_RECORD_BYTES + 1 characters (it is rejected as too long anyway), so memory
    stays bounded whatever the file holds. A final line without ``\\n`` is a line; a file
    ending with ``\\n`` has no empty line after it.
    """
    f.seek(fc.bom_len if start is None else start)
    dec = codecs.getincrementaldecoder(fc.codec)(errors=_MARK_ERRORS)
    limit = MAX_RECORD_BYTES + 1
    first = 1
    pending = ""
    pending_marks = False
    while True:
        chunk = f.read(chunk_bytes)
        before = _marks_made[0]
        text = dec.decode(chunk, final=not chunk)
        # Cheaper than searching the text for markers (another thread's decoding may
        # bump the counter too: that only costs a per-line check).
        marks = _marks_made[0] != before
        if pending:
            text = pending + text
        parts = text.split("\n")
        pending = parts.pop()
        if len(pending) > limit:
            pending = pending[:limit]
        if parts:
            if max(map(len, parts)) > limit:
                parts = [s[:limit] if len(s) > limit else s for s in parts]
            yield first, parts, marks or pending_marks
            first += len(parts)
            pending_marks = marks  # the new pending line may hold this chunk's markers
        else:
            pending_marks = pending_marks or marks
        if not chunk:
            break
    if pending:
        yield first, [pending], pending_marks


@dataclass(frozen=True)
class LineScan:
    """Result of :func:`scan_lines`.

    ``total``: physical lines in the file. ``empty``: sorted 1-based numbers of the lines
    that are empty or a lone ``\\r`` (whitespace-only lines are not listed).
    ``lone_cr``: carriage returns not followed by ``\\n`` (DuckDB may take them for line
    breaks; this reader keeps them as text).
    """

    total: int
    empty: np.ndarray
    lone_cr: int


def scan_lines(f: BinaryIO, fc: FileCodec, chunk_bytes: int = CHUNK_BYTES) -> LineScan:
    """Count physical lines and locate the empty ones, streaming at C speed.

    ASCII-compatible encodings are scanned as bytes; others (UTF-16/32) are decoded first.
    """
    f.seek(fc.bom_len)
    if fc.ascii_compatible:
        nl, cr = b"\n", b"\r"
        decode: Callable[[bytes, bool], bytes | str] = lambda b, final: b  # noqa: E731
    else:
        nl, cr = "\n", "\r"
        dec = codecs.getincrementaldecoder(fc.codec)(errors=_MARK_ERRORS)
        decode = dec.decode
    nlnl, nlcrnl, crnl = nl + nl, nl + cr + nl, cr + nl
    empty = array("q")
    line = 1  # number of the line starting at offset 0 of `buf`
    carry = nl[:0]
    crs = crnls = 0
    cr_at_end = False
    while True:
        chunk = f.read(chunk_bytes)
        buf = decode(chunk, not chunk)
        n_cr = buf.count(cr)
        crs += n_cr
        # Most files hold no carriage return: the searches for one are skipped then.
        crnls += (buf.count(crnl) if n_cr else 0) + (cr_at_end and buf.startswith(nl))
        has_cr = bool(n_cr) or cr in carry
        if buf:
            cr_at_end = buf.endswith(cr)
        if carry:
            buf = carry + buf
        last = buf.rfind(nl)
        if last >= 0:
            # Lines starting at offsets: 0 (if buf starts a line) and after each '\n'.
            starts: list[int] = []
            if buf.startswith(nl) or buf.startswith(crnl):
                starts.append(0)
            for pat in (nlnl, nlcrnl) if has_cr else (nlnl,):
                i = buf.find(pat)
                while i != -1:
                    starts.append(i + 1)
                    i = buf.find(pat, i + 1)
            if starts:
                starts.sort()
                prev, n = 0, line
                for s in starts:
                    n += buf.count(nl, prev, s)
                    empty.append(n)
                    prev = s
            line += buf.count(nl, 0, last + 1)
            carry = buf[last + 1 :]
        else:
            carry = buf
        # Only "is the pending partial line empty or a lone CR" matters: keep 2 chars.
        if len(carry) > 2:
            carry = carry[:2]
        if not chunk:
            break
    if carry:
        if carry == cr:
            empty.append(line)
        total = line
    else:
        total = line - 1
    empty_lines = np.frombuffer(empty, dtype=np.int64) if empty else np.zeros(0, np.int64)
    return LineScan(total, empty_lines, crs - crnls)


def fetch_lines(f: BinaryIO, fc: FileCodec, wanted: Iterable[int], chunk_bytes: int = CHUNK_BYTES) -> dict[int, str]:
    """The text of the given physical lines, exactly as :func:`iter_line_blocks` gives them.

    For ASCII-compatible encodings, blocks holding none of the wanted lines are only
    counted, not decoded.
    """
    targets = sorted(set(wanted))
    out: dict[int, str] = {}
    if not targets:
        return out
    if not fc.ascii_compatible:
        want = set(targets)
        for first, lines, _ in iter_line_blocks(f, fc, chunk_bytes):
            end = first + len(lines)
            i = bisect_left(targets, first)
            while i < len(targets) and targets[i] < end:
                out[targets[i]] = lines[targets[i] - first]
                i += 1
            if len(out) == len(want):
                break
        return out
    f.seek(fc.bom_len)
    limit = MAX_RECORD_BYTES + 1
    keep = limit * fc.max_bytes_per_char + 8  # enough bytes to decode `limit` characters
    line = 1
    carry = b""
    carry_cut = False  # carry holds only the head of a very long line
    t = 0
    while t < len(targets):
        chunk = f.read(chunk_bytes)
        if not chunk:
            if carry and targets[t] == line:
                out[line] = _decode_line(carry, fc, limit)
            break
        last = chunk.rfind(b"\n")
        if last < 0:
            if not carry_cut:
                carry += chunk
                if len(carry) > keep:
                    carry, carry_cut = carry[:keep], True
            continue
        nlines = chunk.count(b"\n", 0, last + 1)
        if targets[t] < line + nlines:
            block = (carry + chunk[: last + 1]) if carry else chunk[: last + 1]
            pieces = block.split(b"\n")
            while t < len(targets) and targets[t] < line + nlines:
                out[targets[t]] = _decode_line(pieces[targets[t] - line], fc, limit)
                t += 1
        line += nlines
        carry = chunk[last + 1 :]
        carry_cut = False
        if len(carry) > keep:
            carry, carry_cut = carry[:keep], True
    return out


def _decode_line(b: bytes, fc: FileCodec, limit: int) -> str:
    s = b.decode(fc.codec, errors=_MARK_ERRORS)
    return s[:limit] if len(s) > limit else s


# --------------------------------------------------------------------------- fields


class Dialect:
    """Delimiter, quote and escape characters, with the compiled field grammar."""

    __slots__ = ("delimiter", "quote", "escape", "blank_chars", "_quoted", "_lead", "_unescape")

    def __init__(self, delimiter: str = ",", quote: str = '"', escape: str = '"') -> None:
        self.delimiter, self.quote, self.escape = delimiter, quote, escape
        #: characters a blank (not-a-record) line may consist of
        self.blank_chars = "".join(c for c in " \t\r\f\v" if c != delimiter)
        q, e = re.escape(quote), re.escape(escape)
        lead = " ?" if delimiter != " " and quote != " " else ""
        trail = " *" if delimiter != " " and quote != " " else ""
        if escape == quote:
            body = f"((?:[^{q}]|{q}{q})*+)"
            pair = quote + quote
            self._unescape: Callable[[str], str] = lambda s: s.replace(pair, quote) if pair in s else s
        else:
            body = f"((?:[^{q}{e}]|{e}.)*+)"
            sub = re.compile(f"{e}(.)", re.DOTALL).sub
            self._unescape = lambda s: sub(r"\1", s) if escape in s else s
        self._quoted = re.compile(f"{lead}{q}{body}{q}{trail}", re.DOTALL)
        self._lead = " " + quote if lead else None

    def parse(self, text: str, pos: int = 0, fields: list[str] | None = None) -> tuple[list[str], int, int]:
        """Split one record's text (no final line terminator) into fields.

        Returns ``(fields, status, pos)``. With status OPEN, ``fields`` are those before
        the open quoted field and ``pos`` is where that field starts: parse again from
        there (passing ``fields``) once more text has been appended.
        """
        d, q = self.delimiter, self.quote
        out = [] if fields is None else list(fields)
        if pos == 0 and q not in text:
            out.extend(text.split(d))
            return out, OK, len(text)
        n = len(text)
        while True:
            if text.startswith(q, pos) or (self._lead is not None and text.startswith(self._lead, pos)):
                m = self._quoted.match(text, pos)
                if m is None:
                    return out, OPEN, pos
                end = m.end()
                if end < n and text[end] != d:
                    return out, JUNK, end
                out.append(self._unescape(m.group(1)))
                if end >= n:
                    return out, OK, end
                pos = end + 1
            else:
                k = text.find(d, pos)
                if k < 0:
                    out.append(text[pos:])
                    return out, OK, n
                out.append(text[pos:k])
                pos = k + 1


def is_blank(line: str, dialect: Dialect) -> bool:
    """An empty or whitespace-only physical line: not a record."""
    return not line or (line[0] in dialect.blank_chars and not line.strip(dialect.blank_chars))


def wrong_count(expected: int, found: int) -> str:
    return f"wrong field count: expected {expected}, found {found}"


def invalid_byte(byte: int, fc: FileCodec) -> str:
    return f"invalid byte 0x{byte:02X} for encoding {fc.label}"


def classify_line(
    line: str, dialect: Dialect, ncols: int, fc: FileCodec, nulls: frozenset[str] = frozenset()
) -> tuple[int, object, str | None]:
    """Judge one physical line on its own, as :func:`iter_records` does.

    Returns ``(BLANK, None, None)``, ``(ROW, fields, None)``, ``(REJECT, raw_text, reason)``
    or ``(UNCLOSED, raw_text, "unterminated quote")`` when a quoted field is still open at the
    end of the line (whether following lines close it is for :func:`iter_records`).
    """
    body = line[:-1] if line.endswith("\r") else line
    if line_too_long(line, fc):
        return REJECT, raw_text(body[:MAX_RECORD_BYTES], fc), REASON_TOO_LONG
    if is_blank(body, dialect):
        return BLANK, None, None
    bad = first_invalid_byte(body)
    if bad is not None:
        return REJECT, raw_text(body, fc), invalid_byte(bad, fc)
    fields, status, _ = dialect.parse(body)
    if status == OPEN:
        return UNCLOSED, body, REASON_UNTERMINATED
    if status == JUNK:
        return REJECT, body, REASON_JUNK
    fitted = fit_fields(fields, ncols, nulls)
    if fitted is None:
        return REJECT, body, wrong_count(ncols, len(fields))
    return ROW, fitted, None


def fit_fields(fields: list[str], ncols: int, nulls: frozenset[str]) -> list[str] | None:
    """``fields`` if there are ``ncols`` of them, else None; extra trailing fields that are
    all null strings (e.g. after a trailing delimiter) are dropped, as DuckDB does."""
    if len(fields) == ncols:
        return fields
    if len(fields) > ncols and nulls.issuperset(fields[ncols:]):
        return fields[:ncols]
    return None


# --------------------------------------------------------------------------- records


@dataclass
class RecordBatch:
    """Records of consecutive lines, as :func:`iter_records` yields them.

    Row ``i`` has fields ``values[i * ncols : (i + 1) * ncols]`` (flat: one list per row
    would keep the garbage collector busy), starts on physical line ``lines[i]`` and
    spans ``spans.get(lines[i], 1)`` lines. ``rejects`` are ``(line, raw_text, reason)``;
    ``blanks`` counts blank lines.
    """

    values: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    spans: dict[int, int] = field(default_factory=dict)
    rejects: list[tuple[int, str, str]] = field(default_factory=list)
    blanks: int = 0


def iter_records(
    blocks: Iterable[tuple[int, list[str], bool]],
    dialect: Dialect,
    ncols: int,
    fc: FileCodec,
    *,
    first_line: int,
    nulls: frozenset[str] = frozenset(),
    batch_rows: int = 100_000,
) -> Iterator[RecordBatch]:
    """Turn physical lines (from :func:`iter_line_blocks`) into batches of records.

    Lines before ``first_line`` are skipped. Every physical line from ``first_line`` on is
    covered exactly once, in file order: as a row's first line, a continuation line of a
    multi-line row, a reject or a blank line. Single lines are judged exactly as
    :func:`classify_line` does. A batch holds at most ``batch_rows`` rows.

    A line whose quoted field is still open is joined with the following lines (at most
    MAX_RECORD_LINES lines / MAX_RECORD_BYTES characters) until the record closes; the
    joined record is accepted only when it closes cleanly with ``ncols`` fields.
    Otherwise only the first line is rejected (``unterminated quote``) and parsing resumes
    at the next line, so good lines after a stray quote survive.
    """
    d, q, blank_chars = dialect.delimiter, dialect.quote, dialect.blank_chars
    parse = dialect.parse
    long_from = MAX_RECORD_BYTES // fc.max_bytes_per_char
    ahead = _Peekable(blocks)
    resume = first_line  # lines before this one are done (skipped, or joined into a record)
    out = RecordBatch()
    values, lines = out.values, out.lines
    for first, buf, marks in ahead:
        if first + len(buf) <= resume:
            continue
        n = first - 1
        for s in buf:
            n += 1
            if n < resume:
                continue
            body = s[:-1] if s and s[-1] == "\r" else s
            if len(s) >= long_from and line_too_long(s, fc):
                out.rejects.append((n, raw_text(body[:MAX_RECORD_BYTES], fc), REASON_TOO_LONG))
                continue
            if not body or (body[0] in blank_chars and not body.strip(blank_chars)):
                out.blanks += 1
                continue
            if marks:
                bad = first_invalid_byte(body)
                if bad is not None:
                    out.rejects.append((n, raw_text(body, fc), invalid_byte(bad, fc)))
                    continue
            if q not in body:
                fields = body.split(d)
            else:
                fields, status, pos = parse(body)
                if status == OPEN:
                    joined = _join(s, fields, pos, _following(buf, n - first + 1, ahead), dialect, ncols, nulls)
                    if joined is None:
                        out.rejects.append((n, body, REASON_UNTERMINATED))
                        continue
                    fields, span = joined
                    out.spans[n] = span
                    resume = n + span
                elif status == JUNK:
                    out.rejects.append((n, body, REASON_JUNK))
                    continue
            if len(fields) != ncols:
                fitted = fit_fields(fields, ncols, nulls)
                if fitted is None:
                    out.rejects.append((n, body, wrong_count(ncols, len(fields))))
                    continue
                fields = fitted
            values.extend(fields)
            lines.append(n)
            if len(lines) >= batch_rows:
                yield out
                out = RecordBatch()
                values, lines = out.values, out.lines
        if len(out.rejects) >= batch_rows:  # a file of rejects: keep memory bounded too
            yield out
            out = RecordBatch()
            values, lines = out.values, out.lines
    if lines or out.rejects or out.blanks:
        yield out


class _Peekable:
    """An iterator of blocks that can look ahead (for records spanning blocks)."""

    def __init__(self, blocks: Iterable[tuple[int, list[str], bool]]) -> None:
        self._it = iter(blocks)
        self._ahead: deque[tuple[int, list[str], bool]] = deque()

    def __iter__(self) -> _Peekable:
        return self

    def __next__(self) -> tuple[int, list[str], bool]:
        return self._ahead.popleft() if self._ahead else next(self._it)

    def peek(self, k: int) -> tuple[int, list[str], bool] | None:
        while len(self._ahead) <= k:
            block = next(self._it, None)
            if block is None:
                return None
            self._ahead.append(block)
        return self._ahead[k]


def _following(buf: list[str], start: int, ahead: _Peekable) -> Iterator[str]:
    """The lines after ``buf[start - 1]``, reading ahead into the next blocks."""
    yield from islice(buf, start, None)
    k = 0
    while (block := ahead.peek(k)) is not None:
        yield from block[1]
        k += 1


def _join(
    first: str,
    fields: list[str],
    pos: int,
    following: Iterator[str],
    dialect: Dialect,
    ncols: int,
    nulls: frozenset[str],
) -> tuple[list[str], int] | None:
    """Complete the record opened by line ``first``: ``(fields, lines used)`` or None."""
    parts = [first]
    size = len(first) + 1
    q = dialect.quote
    for t in following:
        if len(parts) >= MAX_RECORD_LINES:
            return None
        size += len(t) + 1
        if size > MAX_RECORD_BYTES or first_invalid_byte(t) is not None:
            return None
        parts.append(t)
        if q not in t:
            continue  # the open field cannot close on this line
        text = "\n".join(parts)
        if text.endswith("\r"):
            text = text[:-1]
        fields, status, pos = dialect.parse(text, pos, fields)
        if status == OPEN:
            continue
        fitted = fit_fields(fields, ncols, nulls) if status == OK else None
        return None if fitted is None else (fitted, len(parts))
    return None


# --------------------------------------------------------------------------- open quotes


@dataclass(frozen=True)
class OpenLine:
    """A line :func:`iter_records` rejects, found beforehand by a byte scan: as ``unterminated
    quote`` (:func:`find_open_lines`), or for its field count or length (:func:`find_wide_lines`)."""

    line: int  # its number
    text: str  # its text without the line terminator: the reject's raw text
    start: int  # byte offset of its first byte
    end: int  # byte offset of its terminator (``\\r\\n`` or ``\\n``), or the file size
    reason: str = REASON_UNTERMINATED


def can_find_open_lines(fc: FileCodec, dialect: Dialect) -> bool:
    """Whether :func:`find_open_lines` can scan files of this encoding and dialect as bytes:
    every byte below 0x80 is an ASCII character, and so are delimiter, quote and escape."""
    chars = (dialect.delimiter, dialect.quote, dialect.escape)
    return (
        fc.ascii_compatible
        and (fc.max_bytes_per_char == 1 or fc.codec == "utf-8")
        and all(c.isascii() and c not in "\r\n" for c in chars)
    )


def find_open_lines(
    f: BinaryIO,
    fc: FileCodec,
    dialect: Dialect,
    ncols: int,
    *,
    first_line: int,
    nulls: frozenset[str] = frozenset(),
    chunk_bytes: int = CHUNK_BYTES,
) -> list[OpenLine] | int:
    """The lines from ``first_line`` on whose quoted field is still open at their end -- the
    ``unterminated quote`` rejects of :func:`iter_records` -- or, when one of them starts a
    multi-line record, the number of the first that does (the search stops there).

    Requires :func:`can_find_open_lines`. Streams the bytes: a block without the quote byte
    costs one ``find``; in the others numpy picks the few lines that may be open
    (:func:`_maybe_open`), judged then as iter_records does them (classify_line, then the
    join with the following lines). Lines are counted only when some line is open.
    """
    q = dialect.quote.encode()
    escape_is_quote = dialect.escape == dialect.quote
    starters = dialect.delimiter + " \n" + ("\0" if escape_is_quote else dialect.escape)
    allowed = np.frombuffer(starters.encode(), np.uint8)
    limit = MAX_RECORD_BYTES + 1
    data_start = _line_offset(f, fc, first_line, chunk_bytes)
    if data_start is None:
        return []
    found: list[tuple[int, int, str]] = []  # (start, end, text)
    f.seek(data_start)
    base = data_start  # file offset of buf[0], always the start of a line
    carry = b""
    skipping = False  # inside a line too long to be open (classify_line: too long)
    while True:
        chunk = f.read(chunk_bytes)
        buf = carry + chunk if carry else chunk
        if skipping:
            k = buf.find(b"\n")
            if k < 0:
                base += len(buf)
                if not chunk:
                    break
                continue
            skipping = False
            base += k + 1
            buf = buf[k + 1 :]
        end = buf.rfind(b"\n") + 1 if chunk else len(buf)
        if buf.find(q, 0, end) >= 0:
            for s, e in _maybe_open(buf, end, q, escape_is_quote, allowed):
                text = _decode_line(buf[s:e], fc, limit)
                kind, raw, _ = classify_line(text, dialect, ncols, fc, nulls)
                if kind != UNCLOSED:
                    continue
                assert isinstance(raw, str)
                fields, _, pos = dialect.parse(text.removesuffix("\r"))
                resume = f.tell()
                joined = _join(text, fields, pos, _lines_after(f, fc, buf, e + 1, end, base), dialect, ncols, nulls)
                f.seek(resume)
                if joined is not None:
                    return _line_numbers(f, [base + s], data_start, first_line, chunk_bytes)[0]
                found.append((base + s, base + e - text.endswith("\r"), raw))
        carry = buf[end:]
        base += end
        if len(carry) > MAX_RECORD_BYTES:
            base += len(carry)
            carry = b""
            skipping = True
        if not chunk:
            break
    numbers = _line_numbers(f, [s for s, _, _ in found], data_start, first_line, chunk_bytes)
    return [OpenLine(n, text, s, e) for n, (s, e, text) in zip(numbers, found, strict=True)]


def _maybe_open(
    buf: bytes, end: int, quote: bytes, escape_is_quote: bool, allowed: np.ndarray
) -> list[tuple[int, int]]:
    """``(start, end)`` in ``buf[:end]`` (whole lines) of every line whose quoted field may be
    open at its end, and of few others.

    The opening quote of a field left open follows a field start (line start, delimiter or
    space), and the rest of the line is quoted-field body. With ``escape == quote`` the
    body holds quotes in pairs only: with every ``""`` blanked out (left to right, so a run
    of an odd number of quotes keeps its last), the line's last quote is what remains of
    the opening run, after a field start or a blank. Otherwise the line's last quote is the
    opening one or an escaped one (after the escape character). ``allowed`` holds those
    bytes but the line start.
    """
    a = np.frombuffer(buf, np.uint8, end)
    is_quote = a == quote[0]
    if escape_is_quote and (is_quote[1:] & is_quote[:-1]).any():
        a = np.frombuffer(buf.replace(quote + quote, b"\0\0"), np.uint8, end)
        is_quote = a == quote[0]
    qs = np.flatnonzero(is_quote)
    nl = np.flatnonzero(a == 10)
    ends = np.append(nl, end)
    k = np.searchsorted(qs, ends)  # quotes before each line's end
    lines = np.flatnonzero(np.diff(k, prepend=0))  # lines holding a quote
    last = qs[k[lines] - 1]
    lines = lines[(last == 0) | np.isin(a[last - 1], allowed)]
    starts = np.concatenate(([0], nl + 1))[lines]
    return list(zip(starts.tolist(), ends[lines].tolist(), strict=True))


def _lines_after(f: BinaryIO, fc: FileCodec, buf: bytes, pos: int, end: int, base: int) -> Iterator[str]:
    """The lines from ``buf[pos]`` on (``buf[0]`` being at byte ``base`` of the file), read
    from the file once ``buf[:end]`` is used up."""
    limit = MAX_RECORD_BYTES + 1
    while (k := buf.find(b"\n", pos, end)) >= 0:
        yield _decode_line(buf[pos:k], fc, limit)
        pos = k + 1
    for _, lines, _ in iter_line_blocks(f, fc, 1 << 16, start=base + pos):
        yield from lines


# --------------------------------------------------------------------------- wide lines

_UNIT_TYPES: Final = {"utf-16-le": "<u2", "utf-16-be": ">u2", "utf-32-le": "<u4", "utf-32-be": ">u4"}


def _code_units(fc: FileCodec, delimiter: str) -> tuple[np.dtype, int, int, int] | None:
    """``(dtype, width, delimiter unit, line feed unit)`` to scan a file of this encoding as an
    array of code units, or None. The delimiter unit is the first of the delimiter's: counting
    it bounds the number of delimiters from above."""
    if fc.codec in _UNIT_TYPES:
        dtype = np.dtype(_UNIT_TYPES[fc.codec])
    elif fc.ascii_compatible and (fc.max_bytes_per_char == 1 or fc.codec == "utf-8"):
        dtype = np.dtype(np.uint8)
    else:
        return None
    width = dtype.itemsize
    try:
        d = np.frombuffer(delimiter.encode(fc.codec)[:width], dtype)[0]
    except UnicodeEncodeError:
        return None
    return dtype, width, int(d), int(np.frombuffer("\n".encode(fc.codec), dtype)[0])


def can_find_wide_lines(fc: FileCodec, dialect: Dialect) -> bool:
    """Whether :func:`find_wide_lines` can scan files of this encoding and dialect."""
    return _code_units(fc, dialect.delimiter) is not None


def find_wide_lines(
    f: BinaryIO,
    fc: FileCodec,
    dialect: Dialect,
    ncols: int,
    *,
    first_line: int,
    nulls: frozenset[str] = frozenset(),
    chunk_bytes: int = 1 << 20,
    max_extra: int = MAX_EXTRA_FIELDS,
) -> list[OpenLine]:
    """The lines from ``first_line`` on that :func:`iter_records` rejects and that would make
    DuckDB's reader slow: more than ``ncols + max_extra`` fields, or longer than
    MAX_RECORD_BYTES. Each line is kept once, with its reject's raw text and reason.

    Requires :func:`can_find_wide_lines`. One streaming pass counts, per line, the code units
    that may be delimiters (numpy); only the lines over a limit are decoded and judged by
    :func:`classify_line`. Lines whose extra delimiters sit inside quotes are rows: not listed.
    Time is linear in the file's size, memory bounded by the chunk and MAX_RECORD_BYTES (the
    chunk is small because the count makes an int32 copy of it).
    """
    units = _code_units(fc, dialect.delimiter)
    assert units is not None, "find_wide_lines needs can_find_wide_lines"
    dtype, width, delim, lf = units
    max_delims = ncols - 1 + max_extra
    step = max(chunk_bytes - chunk_bytes % width, width)
    candidates: list[tuple[int, int, int]] = []  # (line, start, end) as OpenLine has them
    f.seek(fc.bom_len)
    pos = start = fc.bom_len  # next byte to scan; start of the line being scanned
    line, delims = 1, 0  # that line's number, and its delimiter units so far
    tail = b""  # an incomplete code unit, carried to the next chunk
    while chunk := tail + f.read(step):
        usable = len(chunk) - len(chunk) % width
        if usable == 0:
            break  # a few bytes at the end of the file: part of the last line
        tail = chunk[usable:]
        a = np.frombuffer(chunk, dtype, usable // width)
        is_delim = a == delim
        ends = np.flatnonzero(a == lf)
        if len(ends):
            counts = np.add.reduceat(is_delim[: ends[-1] + 1], np.concatenate(([0], ends[:-1] + 1)), dtype=np.int32)
            line_ends = pos + ends * width
            line_starts = np.concatenate(([start], line_ends[:-1] + width))
            over = (counts > max_delims) | (line_ends - line_starts >= MAX_RECORD_BYTES)
            over[0] |= int(counts[0]) + delims > max_delims
            for i in np.flatnonzero(over).tolist():
                candidates.append((line + i, int(line_starts[i]), int(line_ends[i])))
            line += len(ends)
            start = int(line_ends[-1]) + width
            delims = int(np.count_nonzero(is_delim[ends[-1] + 1 :]))
        else:
            delims += int(np.count_nonzero(is_delim))
        pos += usable
    size = pos + len(tail)
    if size > start and (delims > max_delims or size - start >= MAX_RECORD_BYTES):
        candidates.append((line, start, size))

    limit = MAX_RECORD_BYTES + 1
    keep = limit * fc.max_bytes_per_char + 8  # enough bytes to decode `limit` characters
    cr = "\r".encode(fc.codec)
    out: list[OpenLine] = []
    for n, s, e in candidates:
        if n < first_line:
            continue
        f.seek(s)
        kind, raw, reason = classify_line(_decode_line(f.read(min(e - s, keep)), fc, limit), dialect, ncols, fc, nulls)
        if kind != REJECT:
            continue
        assert isinstance(raw, str) and reason is not None
        if e - s >= width:
            f.seek(e - width)
            if f.read(width) == cr:
                e -= width  # the terminator is CR LF (or the file ends with a CR)
        out.append(OpenLine(n, raw, s, e, reason))
    return out


def _line_offset(f: BinaryIO, fc: FileCodec, line: int, chunk_bytes: int) -> int | None:
    """The byte offset where line ``line`` starts, or None when the file has fewer lines."""
    f.seek(fc.bom_len)
    pos, todo = fc.bom_len, line - 1
    while todo:
        chunk = f.read(chunk_bytes)
        if not chunk:
            return None
        k = -1
        while todo and (k := chunk.find(b"\n", k + 1)) >= 0:
            todo -= 1
        pos += len(chunk) if todo else k + 1
    return pos


def _line_numbers(f: BinaryIO, offsets: list[int], pos: int, line: int, chunk_bytes: int) -> list[int]:
    """The numbers of the lines starting at the sorted byte ``offsets``; line ``line`` starts
    at byte ``pos``."""
    out: list[int] = []
    f.seek(pos)
    for offset in offsets:
        while pos < offset and (b := f.read(min(chunk_bytes, offset - pos))):
            line += b.count(b"\n")
            pos += len(b)
        out.append(line)
    return out


def strip_bom(name: str) -> str:
    return name[1:] if name.startswith("\ufeff") else name


__all__ = [
    "BLANK",
    "CHUNK_BYTES",
    "Dialect",
    "FileCodec",
    "JUNK",
    "LineScan",
    "MAX_EXTRA_FIELDS",
    "MAX_RECORD_BYTES",
    "MAX_RECORD_LINES",
    "OK",
    "OPEN",
    "OpenLine",
    "REASON_JUNK",
    "REASON_TOO_LONG",
    "REASON_UNTERMINATED",
    "REJECT",
    "ROW",
    "RecordBatch",
    "UNCLOSED",
    "can_find_open_lines",
    "can_find_wide_lines",
    "classify_line",
    "fetch_lines",
    "find_open_lines",
    "find_wide_lines",
    "first_invalid_byte",
    "fit_fields",
    "invalid_byte",
    "is_blank",
    "iter_line_blocks",
    "iter_records",
    "line_too_long",
    "raw_bytes",
    "raw_text",
    "resolve_codec",
    "scan_lines",
    "strip_bom",
    "wrong_count",
]
