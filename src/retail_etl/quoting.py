"""The one place where a name or a value becomes SQL text.

Job SQL is written in DuckDB's dialect (``engines/sql.py`` renders it for Spark). Any name or value
that comes from a file, the configuration or the lake (column headers, source and file names, run
ids, dates) goes through these functions, which render sqlglot nodes, so quoting rules live in
sqlglot and nowhere else. Never put such a name or value into SQL with an f-string of its own.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable

from sqlglot import exp

DIALECT = "duckdb"


def ident(name: str) -> str:
    """``name`` as a quoted identifier: ``a"b`` → ``"a""b"``."""
    return exp.to_identifier(name, quoted=True).sql(dialect=DIALECT)


def idents(names: Iterable[str]) -> str:
    """Quoted identifiers, comma-separated."""
    return ", ".join(ident(n) for n in names)


def qualified(*parts: str) -> str:
    """A dotted name whose every part is quoted: ``qualified("retail_etl", "sales")``."""
    return ".".join(ident(p) for p in parts)


def lit(value: str | int | float | bool | decimal.Decimal | dt.date | None) -> str:
    """``value`` as an SQL literal (strings quoted, dates as ``DATE '…'``, ``None`` as NULL)."""
    return literal(value).sql(dialect=DIALECT)


def literal(value: str | int | float | bool | decimal.Decimal | dt.date | None) -> exp.Expression:
    """``value`` as a sqlglot literal node."""
    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.true() if value else exp.false()
    if isinstance(value, (int, float, decimal.Decimal)):
        return exp.Literal.number(value)
    if isinstance(value, dt.datetime):
        return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), exp.DataType.Type.TIMESTAMP)
    if isinstance(value, dt.date):
        return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.Type.DATE)
    return exp.Literal.string(str(value))


def in_list(column: str, values: Iterable[object]) -> str:
    """``"column" IN (v1, v2, …)``; ``false`` for no values."""
    items = [lit(v) for v in values]  # type: ignore[arg-type]
    if not items:
        return "false"
    return f"{ident(column)} IN ({', '.join(items)})"
