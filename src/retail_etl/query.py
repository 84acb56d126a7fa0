"""Read-only SQL over the current snapshots of the catalog tables (``retail_etl.<table>``).

SQL in another dialect (Athena, Trino, Spark) is transpiled to DuckDB with sqlglot.
Only queries are accepted: statements that write (INSERT, COPY, CREATE, ...) are refused.
"""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from retail_etl.config.model import Config
from retail_etl.engines import duckdb as engine
from retail_etl.errors import QueryError

Dialect = Literal["duckdb", "athena", "trino", "spark"]


def to_duckdb(text: str, dialect: Dialect = "duckdb") -> str:
    """Parse ``text`` in ``dialect``, refuse anything but a single query, render it for DuckDB."""
    try:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" at line {first.get('line')}, column {first.get('col')}" if first else ""
        raise QueryError(f"cannot parse the query as {dialect} SQL{where}: {first.get('description', exc)}") from None
    if len(statements) != 1:
        raise QueryError(f"expected one statement, got {len(statements)}", hint="run one query at a time")
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        raise QueryError(
            f"only read-only queries are allowed, got {statement.key.upper()}",
            hint="write a SELECT (or WITH ... SELECT) over retail_etl.<table>",
        )
    return statement.sql(dialect=engine.DIALECT)


def run_query(config: Config, text: str, dialect: Dialect = "duckdb") -> pa.Table:
    """Run a read-only query over the lake's tables and return the result."""
    from retail_etl.pipeline import Lake

    translated = to_duckdb(text, dialect)
    lake = Lake(config)
    con = engine.connect(config.engine)
    try:
        engine.register_tables(con, lake.catalog)
        try:
            return con.sql(translated).to_arrow_table()
        except Exception as exc:  # duckdb raises many error types; all are the query's fault here
            message = str(exc).splitlines()[0]
            raise QueryError(message, hint="`retail-etl catalog list` shows the tables and their columns") from None
    finally:
        con.close()
