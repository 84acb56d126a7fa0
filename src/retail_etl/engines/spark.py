"""Spark engine adapter (extra ``spark``): the jobs' SQL transpiled, relations as temp views.

- SQL: :func:`retail_etl.engines.sql.to_spark`; the session settings that SQL relies on are
  in ``SQL_CONF`` and set on every session the engine uses.
- ``table()`` persists (memory and disk): a relation is computed once, on first use, like a
  DuckDB table (computing it eagerly would cost a Spark job each); ``close()`` unpersists and
  drops what the engine created. The SparkSession lives as long as the process (starting
  one takes seconds).
- Catalog tables are temp views ``<namespace>__<table>`` over the snapshot's Parquet files,
  read with the Iceberg schema (no schema inference; older files lacking a column give NULL).
- Parquet: each partition column is copied into a Hive key ``_p_<column>`` that
  ``partitionBy`` consumes, so the column itself stays in the files (one value per file).
- CSV: the file is cut into byte ranges at line ends; executors split the lines of each
  range with :mod:`retail_etl.sources.csv_lines` (the local reader's own code), numbering
  them within the range, and the driver adds each range's first line number. Records
  spanning lines (quoted line breaks) are joined as the local reader joins them; when one
  crosses a range boundary (see :func:`_range_parser`), or the encoding is not
  ASCII-compatible (UTF-16/32: lines cannot be cut as bytes), the file is read by the local reader
  (:func:`retail_etl.sources.csv_reader.load_csv`) on the driver and handed to Spark as
  Arrow. Executors open raw files by path: the raw zone must be on a file system they
  all see.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import duckdb
import pyarrow as pa
from pyiceberg.expressions import BooleanExpression
from sqlglot import exp

from retail_etl.config.model import CsvOptions, EngineConfig
from retail_etl.engines.base import Engine, catalog_reads, parquet_rows
from retail_etl.engines.sql import to_spark
from retail_etl.errors import ConfigError
from retail_etl.lake.catalog import Catalog
from retail_etl.lake.storage import LocalStorage
from retail_etl.quoting import ident
from retail_etl.sources import csv_reader
from retail_etl.sources.csv_lines import (
    MAX_RECORD_BYTES,
    MAX_RECORD_LINES,
    Dialect,
    FileCodec,
    iter_line_blocks,
    iter_records,
    resolve_codec,
)
from retail_etl.sources.csv_reader import ReadResult, read_header

try:
    from pyspark import RDD, StorageLevel
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql import types as T
except ImportError:
    raise ConfigError(
        "engine.name is spark, but PySpark is not installed", hint="pip install 'retail-etl[spark]'"
    ) from None

#: Session settings the transpiled SQL relies on (runtime settings: applied to a running session too).
SQL_CONF = {
    # ANSI mode, deliberately: like DuckDB, a bad cast or an overflow is an error, not a silent
    # NULL. Lenient parsing is explicit in the SQL (TRY_CAST, TRY_TO_TIMESTAMP).
    "spark.sql.ansi.enabled": "true",
    # DuckDB's TIMESTAMP has no time zone; so must Spark's (and the Parquet it writes).
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # json_object() keeps NULL values as null.
    "spark.sql.jsonGenerator.ignoreNullFields": "false",
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
    "spark.sql.caseSensitive": "false",
    "spark.sql.parquet.compression.codec": "zstd",
}
#: Defaults for settings fixed when a session starts; ``engine.spark.conf`` overrides them.
SESSION_DEFAULTS = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",  # no _SUCCESS files in the lake
}
#: Size of the byte ranges a CSV file is cut into (parsed by up to 4 tasks per core).
CSV_SPLIT_BYTES = 32 << 20

_ROW, _REJECT, _META = 0, 1, 2


class SparkEngine(Engine):
    """Runs the jobs' SQL on a SparkSession."""

    def __init__(self, spark: SparkSession, csv_split_bytes: int = CSV_SPLIT_BYTES) -> None:
        self.spark = spark
        self.csv_split_bytes = csv_split_bytes
        self._persisted: dict[str, DataFrame] = {}  # relations by name
        self._pieces: list[DataFrame] = []  # persisted parts of relations
        self._parsed: list[RDD] = []  # CSV files as executors parsed them
        self._views: set[str] = set()

    @classmethod
    def start(cls, config: EngineConfig) -> SparkEngine:
        """Start (or join) the process's SparkSession as ``config.spark`` says.

        With a ``local`` master and no ``PYSPARK_PYTHON``, executors run this interpreter
        (Spark's default, ``python3`` from the PATH, may lack this package).
        """
        if config.spark.master.startswith("local") and "PYSPARK_PYTHON" not in os.environ:
            os.environ["PYSPARK_PYTHON"] = sys.executable
        builder = SparkSession.builder.master(config.spark.master).appName(config.spark.app_name)
        for key, value in {**SESSION_DEFAULTS, **config.spark.conf}.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        for key, value in SQL_CONF.items():
            spark.conf.set(key, value)
        return cls(spark)

    # -- relations --------------------------------------------------------------------------------

    def _df(self, sql: str) -> DataFrame:
        return self.spark.sql(to_spark(sql))

    def _register(self, name: str, df: DataFrame, *, persist: bool) -> None:
        old = self._persisted.pop(name, None)
        if old is not None:
            old.unpersist()
        if persist:
            df = df.persist(StorageLevel.MEMORY_AND_DISK)
            self._persisted[name] = df
        # Spark parses the name it is given here (but not in dropTempView): quote it.
        df.createOrReplaceTempView(exp.to_identifier(name, quoted=True).sql(dialect="spark"))
        self._views.add(name)

    def table(self, name: str, sql: str) -> None:
        self._register(name, self._df(sql), persist=True)

    def view(self, name: str, sql: str) -> None:
        self._register(name, self._df(sql), persist=False)

    def fetch_rows(self, sql: str) -> list[tuple]:
        return [tuple(row) for row in self._df(sql).collect()]

    def columns(self, name: str) -> list[str]:
        return self._df(f"SELECT * FROM {ident(name)}").columns

    def schema(self, sql: str) -> pa.Schema:
        return pa.schema([pa.field(f.name, _arrow_type(f.dataType)) for f in self._df(sql).schema.fields])

    def read_parquet_view(self, name: str, files: Sequence[str]) -> None:
        self._register(name, self._read_parquet(files), persist=False)

    def _read_parquet(self, files: Sequence[str], schema: T.StructType | None = None) -> DataFrame:
        reader = self.spark.read if schema is None else self.spark.read.schema(schema)
        # Paths are glob patterns to Hadoop: escape the pattern characters of file names.
        return reader.parquet(*(str(f).translate(_GLOB_ESCAPES) for f in files))

    def write_parquet(self, sql: str, out_dir: Path, partition_by: Sequence[str] = ()) -> list[str]:
        if partition_by:
            keys = [f"_p_{c}" for c in partition_by]
            copies = ", ".join(f"{ident(c)} AS {ident(k)}" for c, k in zip(partition_by, keys, strict=True))
            df = self._df(f"SELECT *, {copies} FROM ({sql}) AS _written")
            writer = df.repartition(*keys).write.partitionBy(*keys)
        else:
            writer = self._df(sql).coalesce(1).write
        writer.mode("overwrite").parquet(str(out_dir))
        for crc in out_dir.rglob("*.crc"):  # Hadoop's local checksum files: not data
            crc.unlink()
        files = []
        for path in sorted(out_dir.rglob("*.parquet")):
            if parquet_rows(str(path)) == 0:
                path.unlink()
            else:
                files.append(str(path))
        return files

    def register_catalog_tables(
        self, catalog: Catalog, reads: Mapping[str, BooleanExpression] | None = None
    ) -> dict[str, str]:
        if not isinstance(catalog.storage, LocalStorage):
            raise ConfigError(
                "the spark engine runs on a lake in a folder (local, or mounted on every node), not on s3://",
                path=("engine", "name"), hint="use engine: duckdb for an s3:// lake",
            )
        relations = {}
        for name, row_filter in catalog_reads(catalog, reads).items():
            table = catalog.load(name)
            if table is None:
                continue
            schema = T.StructType([T.StructField(f.name, _spark_type(f.type)) for f in table.schema().as_arrow()])
            files = catalog.files(table, row_filter=row_filter)
            df = self._read_parquet(files, schema) if files else self.spark.createDataFrame([], schema)
            view = f"{catalog.namespace}__{name}"
            self._register(view, df, persist=False)
            relations[name] = ident(view)
        return relations

    def close(self) -> None:
        for df in [*self._persisted.values(), *self._pieces]:
            # A relation whose query failed cannot be re-planned to unpersist it; that error
            # was raised where it was used.
            with contextlib.suppress(Exception):
                df.unpersist()
        for rdd in self._parsed:
            rdd.unpersist()
        for name in self._views:
            self.spark.catalog.dropTempView(name)
        self._persisted.clear()
        self._pieces.clear()
        self._parsed.clear()
        self._views.clear()

    # -- CSV --------------------------------------------------------------------------------------

    def load_csv(self, path: Path, opts: CsvOptions, *, table: str, rejects_table: str, source_file: str) -> ReadResult:
        names = read_header(path, opts)  # the local reader's header checks and errors
        with open(path, "rb") as f:
            codec = resolve_codec(opts.encoding, f.read(4))
        if not names or not codec.ascii_compatible:
            return self._load_local(path, opts, table, rejects_table, source_file)
        first_line = opts.skip_rows + (2 if opts.header else 1)
        ranges = _ranges(path, _line_offset(path, codec, first_line), self.csv_split_bytes)
        parse = _range_parser(str(path), codec, opts, len(names))
        sc = self.spark.sparkContext
        parsed = sc.parallelize(ranges, max(min(len(ranges), 4 * sc.defaultParallelism), 1)).mapPartitions(parse)
        # Kept until close(): the relations built from it are computed when first used.
        self._parsed.append(parsed.persist(StorageLevel.MEMORY_AND_DISK))
        found = parsed.filter(lambda r: r[0] == _META).map(lambda r: (r[1], r[3])).collect()
        metas = {rid: _Meta(*fields) for rid, fields in found}
        totals = sum(metas.values(), _Meta())
        if totals.flagged:
            self._parsed.pop().unpersist()
            return self._load_local(path, opts, table, rejects_table, source_file)
        first: dict[int, int] = {}  # range -> the number of the line before it
        line = first_line - 1
        for rid in sorted(metas):
            first[rid] = line
            line += metas[rid].lines
        row_schema = T.StructType(
            [T.StructField("_source_file", T.StringType()), T.StructField("_source_line", T.LongType())]
            + [T.StructField(n, T.StringType()) for n in names]
        )
        rows = parsed.filter(lambda r: r[0] == _ROW).map(lambda r: (source_file, first[r[1]] + r[2], *r[3]))
        self._register(table, self.spark.createDataFrame(rows, row_schema, verifySchema=False), persist=True)
        if totals.rejects:
            rejects = parsed.filter(lambda r: r[0] == _REJECT).map(lambda r: (source_file, first[r[1]] + r[2], *r[3]))
            self._append_rejects(rejects_table, self.spark.createDataFrame(rejects, _REJECT_SCHEMA, verifySchema=False))
        return ReadResult(names, totals.rows, totals.rejects, totals.blanks, "spark")

    def _load_local(self, path: Path, opts: CsvOptions, table: str, rejects_table: str, source_file: str) -> ReadResult:
        """Read with the local reader (multi-line records, other encodings) and hand the rows to Spark."""
        con = duckdb.connect()
        try:
            read = csv_reader.load_csv(con, path, opts, table="t", rejects_table="r", source_file=source_file)
            rows, rejects = con.sql("SELECT * FROM t").to_arrow_table(), con.sql("SELECT * FROM r").to_arrow_table()
        finally:
            con.close()
        self._register(table, self.spark.createDataFrame(rows), persist=True)
        if read.rejected:
            self._append_rejects(rejects_table, self.spark.createDataFrame(rejects, _REJECT_SCHEMA))
        return read

    def _append_rejects(self, name: str, rejects: DataFrame) -> None:
        """Add ``rejects`` to the rejects relation ``name`` (computed once, when first used)."""
        self._pieces.append(rejects.persist(StorageLevel.MEMORY_AND_DISK))
        self._register(name, self._df(f"SELECT * FROM {ident(name)}").unionByName(self._pieces[-1]), persist=False)


@dataclasses.dataclass(frozen=True)
class _Meta:
    """What the executors found in a byte range (or, summed, in a file)."""

    lines: int = 0
    blanks: int = 0
    rows: int = 0
    rejects: int = 0
    flagged: int = 0  # records running into the next range: the local reader must read the file

    def __add__(self, other: _Meta) -> _Meta:
        return _Meta(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other), strict=True)))


_REJECT_SCHEMA = T.StructType([
    T.StructField("_source_file", T.StringType()), T.StructField("_source_line", T.LongType()),
    T.StructField("raw_line", T.StringType()), T.StructField("reason", T.StringType()),
])
_GLOB_ESCAPES = str.maketrans({c: "\\" + c for c in "\\[]{}*?"})


def _line_offset(path: Path, codec: FileCodec, line: int) -> int:
    """Byte offset where physical line ``line`` starts (the file's size if it has fewer lines)."""
    with open(path, "rb") as f:
        f.seek(codec.bom_len)
        for _ in range(line - 1):
            if not f.readline():
                break
        return f.tell()


def _ranges(path: Path, start: int, split: int) -> list[tuple[int, int, int, bool]]:
    """``(range id, start, end, is last)`` byte ranges from ``start`` on, each ending after a ``\\n``."""
    size = path.stat().st_size
    bounds = [start]
    with open(path, "rb") as f:
        while bounds[-1] + split < size:
            f.seek(bounds[-1] + split - 1)
            f.readline()
            if f.tell() >= size:
                break
            bounds.append(f.tell())
    spans = [(s, e) for s, e in zip(bounds, [*bounds[1:], size], strict=True) if e > s]
    return [(i, s, e, i == len(spans) - 1) for i, (s, e) in enumerate(spans)]


def _range_parser(
    path: str, codec: FileCodec, opts: CsvOptions, ncols: int
) -> Callable[[Iterable[tuple[int, int, int, bool]]], Iterator[tuple]]:
    """The executor side: the records of byte ranges, lines numbered from 1 within each range.

    Yields ``(_ROW, range, line, fields)``, ``(_REJECT, range, line, (raw, reason))`` and,
    last for each range, ``(_META, range, 0, fields of _Meta)``.

    iter_records parses each range followed by the lines a record starting in it may take
    (its limits: MAX_RECORD_LINES lines, MAX_RECORD_BYTES characters), so a quote left open
    near the end of a range is judged as on the whole file. What starts after the range is
    the next range's. A record that does run into the next range (a quoted line break right
    at the boundary) flags the range: the next one would start inside a record.
    """
    local = dataclasses.replace(codec, bom_len=0)  # ranges start after the byte-order mark
    delimiter, quote, escape = opts.delimiter, opts.quote, opts.escape
    nulls = frozenset(opts.null_values)

    def parse(ranges: Iterable[tuple[int, int, int, bool]]) -> Iterator[tuple]:
        dialect = Dialect(delimiter, quote, escape)
        for rid, start, end, last in ranges:
            with open(path, "rb") as f:
                f.seek(start)
                data = f.read(end - start)
                ahead = b"" if last else _lookahead(f, local)
            lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
            rows = rejects = continued = overrun = 0
            blocks = iter_line_blocks(io.BytesIO(data + ahead), local)
            for batch in iter_records(blocks, dialect, ncols, local, first_line=1, nulls=nulls):
                values = batch.values
                for i, line in enumerate(batch.lines):
                    if line > lines:
                        break
                    last_line = line + batch.spans.get(line, 1) - 1
                    continued += min(last_line, lines) - line
                    overrun = max(overrun, last_line - lines)
                    rows += 1
                    yield _ROW, rid, line, [None if v in nulls else v for v in values[i * ncols:(i + 1) * ncols]]
                for line, raw, reason in batch.rejects:
                    if line <= lines:
                        rejects += 1
                        yield _REJECT, rid, line, (raw, reason)
            # Every line is a record's first, a continuation, a reject or blank.
            blanks = lines - rows - continued - rejects
            yield _META, rid, 0, (lines, blanks, rows, rejects, int(overrun > 0))

    return parse


def _lookahead(f: BinaryIO, codec: FileCodec) -> bytes:
    """The lines from ``f``'s position on that a record starting before it may take."""
    budget = MAX_RECORD_BYTES * codec.max_bytes_per_char + 1  # enough bytes for the characters
    parts = []
    for _ in range(MAX_RECORD_LINES):
        part = f.readline(budget)
        if not part:
            break
        parts.append(part)
        budget -= len(part)
        if budget <= 0:
            break
    return b"".join(parts)


def _arrow_type(t: T.DataType) -> pa.DataType:
    if isinstance(t, T.StringType):
        return pa.string()
    if isinstance(t, T.DecimalType):
        return pa.decimal128(t.precision, t.scale)
    if isinstance(t, T.ArrayType):
        return pa.list_(_arrow_type(t.elementType))
    simple = {
        T.LongType: pa.int64(), T.IntegerType: pa.int32(), T.ShortType: pa.int16(), T.ByteType: pa.int8(),
        T.BooleanType: pa.bool_(), T.DoubleType: pa.float64(), T.FloatType: pa.float32(), T.DateType: pa.date32(),
        T.TimestampNTZType: pa.timestamp("us"), T.TimestampType: pa.timestamp("us", tz="UTC"),
    }
    for cls, arrow in simple.items():
        if isinstance(t, cls):
            return arrow
    raise TypeError(f"no Arrow type for Spark type {t.simpleString()}")


def _spark_type(t: pa.DataType) -> T.DataType:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return T.StringType()
    if pa.types.is_decimal(t):
        return T.DecimalType(t.precision, t.scale)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return T.ArrayType(_spark_type(t.value_type))
    if pa.types.is_timestamp(t):
        return T.TimestampType() if t.tz else T.TimestampNTZType()
    simple = {
        pa.int64(): T.LongType(), pa.int32(): T.IntegerType(), pa.int16(): T.ShortType(), pa.int8(): T.ByteType(),
        pa.bool_(): T.BooleanType(), pa.float64(): T.DoubleType(), pa.float32(): T.FloatType(),
        pa.date32(): T.DateType(),
    }
    if t in simple:
        return simple[t]
    raise TypeError(f"no Spark type for Arrow type {t}")
