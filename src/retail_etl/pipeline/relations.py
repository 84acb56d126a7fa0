"""Relations the steps build from committed tables and written files (SQL through :mod:`retail_etl.quoting`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlglot import exp

from retail_etl.engines.base import Engine
from retail_etl.model import ENTITIES, LINEAGE_COLUMNS
from retail_etl.quoting import ident, in_list, lit

LINEAGE = LINEAGE_COLUMNS
#: A validated line's original fields as JSON, kept for the transform's quarantine.
RECORD = ("record", "VARCHAR")


def empty(engine: Engine, columns: Sequence[tuple[str, str]]) -> str:
    """A new relation with ``columns`` (name, SQL type) and no rows; returns its SQL name."""
    name = engine.temp_name("empty")
    nulls = ", ".join(f"{exp.cast(exp.null(), exp.DataType.build(sql_type)).sql('duckdb')} AS {ident(column)}"
                      for column, sql_type in columns)
    engine.view(name, f"SELECT {nulls} WHERE false")
    return ident(name)


def entity_columns(entity: str) -> list[tuple[str, str]]:
    return [(c.name, c.type) for c in ENTITIES[entity].columns]


def dates(engine: Engine, days: Sequence[dt.date]) -> str:
    """A new table ``(sale_date)`` holding ``days``; returns its SQL name."""
    name = engine.temp_name("dates")
    rows = ", ".join(f"({lit(d.isoformat())})" for d in days)
    engine.table(name, f"SELECT CAST(d AS DATE) AS sale_date FROM (VALUES {rows}) AS t(d)")
    return ident(name)


def parquet(engine: Engine, files: Sequence[str], prefix: str) -> str:
    """A new view over Parquet ``files`` (at least one); returns its SQL name."""
    name = engine.temp_name(prefix)
    engine.read_parquet_view(name, files)
    return ident(name)


def validated_after(engine: Engine, source: str, old: str | None, deliveries: list[str], new_files: list[str],
                    extra: Sequence[tuple[str, str]] = ()) -> str:
    """A new view: the source's validated lines as they are once this batch is committed (its
    committed lines outside the delivery ids ``deliveries``, plus the lines of ``new_files``); returns
    its SQL name. ``extra`` (name, SQL type) are further columns to keep (the source's attributes).
    Lines carry their original ``record``; lines validated before records were kept read it as NULL."""
    columns = [*entity_columns("sales"), *extra, *LINEAGE, RECORD]
    parts = []
    if old:
        keep = f" AND NOT {in_list('delivery_id', deliveries)}" if deliveries else ""
        parts.append(f"SELECT {_columns_of(engine, old, columns)} FROM {old} WHERE source = {lit(source)}{keep}")
    if new_files:
        new = parquet(engine, new_files, "validated_new")
        parts.append(f"SELECT {_columns_of(engine, new, columns)} FROM {new}")
    if not parts:
        parts.append(f"SELECT * FROM {empty(engine, columns)}")
    name = engine.temp_name("validated_after")
    engine.view(name, " UNION ALL ".join(parts))
    return ident(name)


def _columns_of(engine: Engine, relation: str, columns: Sequence[tuple[str, str]]) -> str:
    """``columns`` of ``relation``, a typed NULL for each its files do not have (a column added to the
    table after they were written: its files are read as they are)."""
    have = set(engine.schema(f"SELECT * FROM {relation} LIMIT 0").names)
    return ", ".join(
        ident(c) if c in have else f"{exp.cast(exp.null(), exp.DataType.build(t)).sql('duckdb')} AS {ident(c)}"
        for c, t in columns)


def union_all(relations: Sequence[str]) -> str:
    """A query over every row of ``relations`` (SQL names of relations with the same columns)."""
    return " UNION ALL ".join(f"SELECT * FROM {r}" for r in relations)
