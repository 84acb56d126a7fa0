"""Read-only SQL over the current snapshots of the catalog tables (``retail_etl.<table>``).

SQL in another dialect (Athena, Trino, Spark) is transpiled to DuckDB with sqlglot. A query reads the
catalog's tables and nothing else, which is enforced twice:

- sqlglot parses it first: one statement, a query (SELECT, WITH, UNION, ...), calling no function that
  reads files (``read_text``, ``read_csv``, ``glob``, ...) and naming no file as a table. This gives
  clear refusals; it is not the guarantee, since a parser can be fooled.
- DuckDB enforces it: once the tables are registered as views over their data files, the connection
  allows exactly those files (``allowed_paths``), disables external access (files, extensions,
  Python objects) and locks its configuration, so no statement can turn any of it back on.

The catalog is opened read-only; a lake that never committed anything is not created by a query.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from retail_etl.errors import QueryError
from retail_etl.quoting import lit, qualified

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from retail_etl.config.model import Config
    from retail_etl.lake.catalog import Catalog

Dialect = Literal["duckdb", "athena", "trino", "spark"]
DIALECT = "duckdb"

#: Functions that read files or run other SQL, refused by name (DuckDB refuses them too, see above).
FILE_FUNCTIONS = frozenset({
    "glob", "sniff_csv", "query", "query_table", "from_csv_auto", "load_aws_credentials",
    "json_execute_serialized_sql", "duckdb_secrets", "which_secret",
})
FILE_FUNCTION_PREFIXES = ("read_", "parquet_", "iceberg_", "delta_", "sqlite_", "postgres_", "mysql_", "st_read")
FILE_FUNCTION_SUFFIXES = ("_scan", "_attach")

_HINT = "query the catalog's tables, retail_etl.<table>; `retail-etl catalog list` shows them"


def to_duckdb(text: str, dialect: Dialect = "duckdb") -> str:
    """Parse ``text`` in ``dialect``, refuse anything but a single query over tables, render it for DuckDB."""
    return _parse(text, dialect).sql(dialect=DIALECT)


def _parse(text: str, dialect: Dialect) -> exp.Query:
    with _quiet_sqlglot():
        try:
            statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
        except ParseError as exc:
            first = exc.errors[0] if exc.errors else {}
            where = f" at line {first.get('line')}, column {first.get('col')}" if first else ""
            raise QueryError(f"cannot parse the query as {dialect} SQL{where}: {first.get('description', exc)}",
                             hint="check the quotes and brackets") from None
        except SqlglotError as exc:  # the tokenizer's errors (an unterminated string, ...)
            raise QueryError(f"cannot read the query as {dialect} SQL: {str(exc).splitlines()[0]}",
                             hint="check that every quote and bracket is closed") from None
    if len(statements) != 1:
        raise QueryError(f"expected one statement, got {len(statements)}", hint="run one query at a time")
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        raise QueryError(
            f"only read-only queries are allowed, got {statement.key.upper()}",
            hint="write a SELECT (or WITH ... SELECT) over retail_etl.<table>",
        )
    for func in statement.find_all(exp.Func):
        name = (func.name if isinstance(func, exp.Anonymous) else func.sql_name()).lower()
        if _reads_files(name):
            raise QueryError(f"the query calls {name}(), which reads files: a query reads only the catalog's "
                             "tables", hint=_HINT)
    for table in statement.find_all(exp.Table):
        for part in table.parts:
            if isinstance(part, exp.Identifier) and any(c in part.name for c in "/\\:.~*?"):
                raise QueryError(f"{part.name!r} names a file: a query reads only the catalog's tables", hint=_HINT)
    return statement


def _reads_files(name: str) -> bool:
    return (name in FILE_FUNCTIONS or name.startswith(FILE_FUNCTION_PREFIXES)
            or name.endswith(FILE_FUNCTION_SUFFIXES))


@contextlib.contextmanager
def _quiet_sqlglot() -> Iterator[None]:
    """sqlglot logs a warning when it falls back to a raw command; the refusal says it better."""
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def register(con: duckdb.DuckDBPyConnection, catalog: Catalog) -> tuple[list[str], list[str]]:
    """Every catalog table as a view ``<namespace>.<table>`` over its current snapshot's data
    files; returns (the tables, their files)."""
    catalog.storage.attach(con)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {qualified(catalog.namespace)}")
    names, every_file = [], []
    for name in catalog.tables():
        table = catalog.load(name)
        if table is None:
            continue
        target = qualified(catalog.namespace, name)
        files = catalog.files(table)
        if files:
            listing = ", ".join(lit(f) for f in files)
            con.execute(f"CREATE VIEW {target} AS SELECT * FROM "
                        f"read_parquet([{listing}], union_by_name = true, hive_partitioning = false)")
        else:
            empty = f"__empty_{len(names)}"
            con.register(empty, table.schema().as_arrow().empty_table())
            con.execute(f"CREATE VIEW {target} AS SELECT * FROM {qualified(empty)}")
        names.append(name)
        every_file += files
    return names, every_file


def sandbox(con: duckdb.DuckDBPyConnection, files: list[str]) -> None:
    """Let ``con`` read exactly ``files`` and nothing else from now on: no other file, no extension,
    no Python object, and no setting can be changed back."""
    con.execute("SET python_enable_replacements = false")
    con.execute(f"SET allowed_paths = [{', '.join(lit(f) for f in files)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def run_query(config: Config, text: str, dialect: Dialect = "duckdb") -> pa.Table:
    """Run a read-only query over the lake's tables and return the result."""
    import duckdb

    from retail_etl.engines import duckdb as engine
    from retail_etl.lake.catalog import open_read_only
    from retail_etl.lake.storage import open_storage

    translated = to_duckdb(text, dialect)
    catalog = open_read_only(open_storage(config), config.lake.namespace)
    con = engine.connect(config.engine)
    try:
        names, files = register(con, catalog) if catalog is not None else ([], [])
        sandbox(con, files)
        try:
            return con.sql(translated).to_arrow_table()
        except duckdb.PermissionException as exc:
            raise QueryError(f"refused: {_first_line(exc)}; a query reads only the catalog's tables",
                             hint=_HINT) from None
        except duckdb.CatalogException as exc:
            if not names:
                raise QueryError("the lake has no tables yet", hint="`retail-etl run` creates them") from None
            raise QueryError(_first_line(exc), hint=_HINT) from None
        except duckdb.Error as exc:
            raise QueryError(_first_line(exc), hint=_HINT) from None
    finally:
        con.close()


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
