"""DuckDB engine adapter: a configured connection, catalog tables as views, Parquet writes.

The jobs' SQL is written in the DuckDB dialect, so :class:`DuckDBEngine` runs it as it is.
The module-level functions serve ``query`` (read-only SQL over the catalog) as well.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
from pyiceberg.expressions import BooleanExpression
from retail_etl.config.model import CsvOptions, EngineConfig
from retail_etl.engines.base import Engine, catalog_reads, parquet_rows
from retail_etl.errors import from_engine_error, from_os_error
from retail_etl.lake.catalog import Catalog
from retail_etl.quoting import DIALECT, ident, idents, lit, qualified
from retail_etl.sources import csv_reader
from retail_etl.sources.csv_reader import ReadResult

__all__ = ["DIALECT", "DuckDBEngine", "arrow_schema", "connect", "register_tables", "write_parquet"]


def connect(engine: EngineConfig, temp_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with the configured memory limit; spills to ``temp_dir``."""
    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit = {lit(_size(engine.memory_limit))}")
    if engine.threads:
        con.execute(f"SET threads = {lit(int(engine.threads))}")
    if temp_dir is not None:
        temp_dir.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory = {lit(str(temp_dir))}")
    con.execute("SET enable_progress_bar = false")  # the CLI shows its own progress
    # No result depends on row order (the CSV reader keeps file order where it numbers lines);
    # without it DuckDB scans, joins and writes in parallel and buffers less.
    con.execute("SET preserve_insertion_order = false")
    # A partitioned write (one file per sale date) buffers rows per date until a thread holds
    # this many: with the default (524,288) a year of dates stays buffered and spills; 8,192
    # halved the 10M-row writes (bench/RESULTS.md). Open files: a year of dates, plus headroom.
    con.execute("SET partitioned_write_flush_threshold = 8192")
    con.execute("SET partitioned_write_max_open_files = 400")
    return con


def register_tables(
    con: duckdb.DuckDBPyConnection, catalog: Catalog, reads: Mapping[str, BooleanExpression] | None = None
) -> list[str]:
    """Expose catalog tables (current snapshots) as views ``<namespace>.<table>``; returns the names.

    ``reads``: the tables to expose (default: all), each over the files its filter may match.
    """
    catalog.storage.attach(con)
    schema = catalog.namespace
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(schema)}")
    registered = []
    for name, row_filter in catalog_reads(catalog, reads).items():
        table = catalog.load(name)
        if table is None:
            continue
        target = qualified(schema, name)
        files = catalog.files(table, row_filter=row_filter)
        if files:
            con.execute(
                f"CREATE OR REPLACE VIEW {target} AS "
                f"SELECT * FROM read_parquet({_list(files)}, union_by_name=true, hive_partitioning=false)"
            )
        else:
            empty_name = f"__empty_{schema}_{name}"
            con.register(empty_name, table.schema().as_arrow().empty_table())
            con.execute(f"CREATE OR REPLACE VIEW {target} AS SELECT * FROM {ident(empty_name)}")
        registered.append(name)
    return registered


def write_parquet(
    con: duckdb.DuckDBPyConnection, query: str, out_dir: Path, *, partition_by: Sequence[str] = ()
) -> list[str]:
    """Write the result of ``query`` as Parquet under ``out_dir`` (partition columns kept in the files)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    options = ["FORMAT parquet", "COMPRESSION zstd"]
    if partition_by:
        options += [f"PARTITION_BY ({idents(partition_by)})", "WRITE_PARTITION_COLUMNS true", "OVERWRITE_OR_IGNORE true"]
        target = out_dir
    else:
        target = out_dir / "data_0.parquet"
    con.execute(f"COPY ({query}) TO {lit(str(target))} ({', '.join(options)})")
    files = sorted(str(p) for p in out_dir.rglob("*.parquet"))
    if not partition_by and files and parquet_rows(files[0]) == 0:
        Path(files[0]).unlink()
        return []
    return files


def arrow_schema(con: duckdb.DuckDBPyConnection, query: str) -> pa.Schema:
    return con.sql(f"SELECT * FROM ({query}) LIMIT 0").to_arrow_table().schema


def _list(values: Sequence[str]) -> str:
    """A list literal of strings: ``['a', 'b']``."""
    return f"[{', '.join(lit(v) for v in values)}]"


def _size(text: str) -> str:
    cleaned = text.strip().upper().replace(" ", "")
    if not cleaned or not cleaned[0].isdigit() or not all(c.isalnum() or c in ".%" for c in cleaned):
        from retail_etl.errors import ConfigError

        raise ConfigError(f"engine.memory_limit {text!r} is not a size", hint="write e.g. 2GB or 512MB")
    return cleaned


@contextmanager
def _translated(action: str, path: Path | None = None) -> Iterator[None]:
    """DuckDB's I/O and out-of-memory errors (and the OS errors of its folders) as the project's."""
    try:
        yield
    except OSError as exc:
        raise from_os_error(exc, action=action, path=exc.filename or path) from exc
    except duckdb.Error as exc:
        known = from_engine_error(exc, action=action, path=path)
        if known is None:
            raise
        raise known from exc


class DuckDBEngine(Engine):
    """The default engine: one in-memory DuckDB connection, SQL run as the jobs write it."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def table(self, name: str, sql: str) -> None:
        with _translated(f"build {name}"):
            self.con.execute(f"CREATE OR REPLACE TABLE {ident(name)} AS {sql}")

    def view(self, name: str, sql: str) -> None:
        self.con.execute(f"CREATE OR REPLACE VIEW {ident(name)} AS {sql}")

    def drop(self, name: str) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {ident(name)}")

    def fetch_rows(self, sql: str) -> list[tuple]:
        return self.con.execute(sql).fetchall()

    def columns(self, name: str) -> list[str]:
        return self.con.sql(f"SELECT * FROM {ident(name)} LIMIT 0").columns

    def schema(self, sql: str) -> pa.Schema:
        return arrow_schema(self.con, sql)

    def read_parquet_view(self, name: str, files: Sequence[str]) -> None:
        self.view(name, f"SELECT * FROM read_parquet({_list(files)}, hive_partitioning=false)")

    def write_parquet(self, sql: str, out_dir: Path, partition_by: Sequence[str] = ()) -> list[str]:
        with _translated("write Parquet files to", out_dir):
            return write_parquet(self.con, sql, out_dir, partition_by=partition_by)

    def load_csv(self, path: Path, opts: CsvOptions, *, table: str, rejects_table: str, source_file: str) -> ReadResult:
        self.con.execute(f"DROP TABLE IF EXISTS {ident(table)}")
        return csv_reader.load_csv(self.con, path, opts, table=table, rejects_table=rejects_table,
                                   source_file=source_file)

    def register_catalog_tables(
        self, catalog: Catalog, reads: Mapping[str, BooleanExpression] | None = None
    ) -> dict[str, str]:
        return {name: qualified(catalog.namespace, name) for name in register_tables(self.con, catalog, reads)}

    def close(self) -> None:
        self.con.close()
