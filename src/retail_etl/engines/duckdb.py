"""DuckDB engine adapter: a configured connection, catalog tables as views, Parquet writes.

Only engine-specific I/O lives here; the SQL of the jobs is built as sqlglot expressions
elsewhere and rendered for the ``duckdb`` dialect.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
from sqlglot import exp

from retail_etl.config.model import EngineConfig
from retail_etl.lake.catalog import Catalog

DIALECT = "duckdb"


def connect(engine: EngineConfig, temp_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with the configured memory limit; spills to ``temp_dir``."""
    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit = '{_size(engine.memory_limit)}'")
    if engine.threads:
        con.execute(f"SET threads = {int(engine.threads)}")
    if temp_dir is not None:
        temp_dir.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory = {_quote(str(temp_dir))}")
    con.execute("SET preserve_insertion_order = true")
    return con


def sql(expression: exp.Expression) -> str:
    return expression.sql(dialect=DIALECT)


def register_tables(
    con: duckdb.DuckDBPyConnection, catalog: Catalog, names: Iterable[str] | None = None
) -> list[str]:
    """Expose catalog tables (current snapshots) as views ``<namespace>.<table>``; returns the names."""
    schema = catalog.namespace
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(schema)}")
    registered = []
    for name in names if names is not None else catalog.tables():
        table = catalog.load(name)
        if table is None:
            continue
        target = f"{_ident(schema)}.{_ident(name)}"
        files = catalog.files(table)
        if files:
            file_list = ", ".join(_quote(f) for f in files)
            con.execute(f"CREATE OR REPLACE VIEW {target} AS SELECT * FROM read_parquet([{file_list}], union_by_name=true)")
        else:
            empty = table.schema().as_arrow().empty_table()
            con.register(f"__empty_{schema}_{name}", empty)
            con.execute(f"CREATE OR REPLACE VIEW {target} AS SELECT * FROM {_ident(f'__empty_{schema}_{name}')}")
        registered.append(name)
    return registered


def write_parquet(
    con: duckdb.DuckDBPyConnection, query: str, out_dir: Path, *, partition_by: Sequence[str] = ()
) -> list[str]:
    """Write the result of ``query`` as Parquet under ``out_dir`` (partition columns kept in the files)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    options = ["FORMAT parquet", "COMPRESSION zstd"]
    if partition_by:
        cols = ", ".join(_ident(c) for c in partition_by)
        options += [f"PARTITION_BY ({cols})", "WRITE_PARTITION_COLUMNS true", "OVERWRITE_OR_IGNORE true"]
        target = out_dir
    else:
        target = out_dir / "data_0.parquet"
    con.execute(f"COPY ({query}) TO {_quote(str(target))} ({', '.join(options)})")
    files = sorted(str(p) for p in out_dir.rglob("*.parquet"))
    if not partition_by and files and pq_rows(files[0]) == 0:
        Path(files[0]).unlink()
        return []
    return files


def pq_rows(path: str) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def arrow_schema(con: duckdb.DuckDBPyConnection, query: str) -> pa.Schema:
    return con.sql(f"SELECT * FROM ({query}) LIMIT 0").to_arrow_table().schema


def _ident(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql(dialect=DIALECT)


def _quote(text: str) -> str:
    return exp.Literal.string(text).sql(dialect=DIALECT)


def _size(text: str) -> str:
    cleaned = text.strip().upper().replace(" ", "")
    if not cleaned or not cleaned[0].isdigit() or not all(c.isalnum() or c == "." for c in cleaned):
        from retail_etl.errors import ConfigError

        raise ConfigError(f"engine.memory_limit {text!r} is not a size", hint="write e.g. 2GB or 512MB")
    return cleaned


def fetch_row(con: duckdb.DuckDBPyConnection, query: str, params: Sequence[object] | None = None) -> tuple:
    """The single row of ``query``. (fetchone() would leave the result open, which DuckDB 2 refuses
    to run further statements beside.)"""
    return con.execute(query, params).fetchall()[0] if params else con.execute(query).fetchall()[0]
