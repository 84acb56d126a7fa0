"""Relations the steps build from committed tables and written files (SQL through :mod:`retail_etl.quoting`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from retail_etl.engines.base import Engine
from retail_etl.model import ENTITIES
from retail_etl.quoting import ident, idents, in_list, lit

LINEAGE = (("source", "VARCHAR"), ("source_file", "VARCHAR"), ("delivery_id", "VARCHAR"), ("source_line", "BIGINT"),
           ("run_id", "VARCHAR"))


def empty(engine: Engine, columns: Sequence[tuple[str, str]]) -> str:
    """A new relation with ``columns`` (name, SQL type) and no rows; returns its SQL name."""
    name = engine.temp_name("empty")
    nulls = ", ".join(f"CAST(NULL AS {sql_type}) AS {ident(column)}" for column, sql_type in columns)
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


def validated_after(
    engine: Engine, source: str, old: str | None, deliveries: list[str], new_files: list[str]
) -> str:
    """A new view: the source's validated lines as they are once this batch is committed (its
    committed lines outside the delivery ids ``deliveries``, plus the lines of ``new_files``);
    returns its SQL name."""
    columns = [*ENTITIES["sales"].names, *(c for c, _ in LINEAGE)]
    cols = idents(columns)
    parts = []
    if old:
        keep = f" AND NOT {in_list('delivery_id', deliveries)}" if deliveries else ""
        parts.append(f"SELECT {cols} FROM {old} WHERE source = {lit(source)}{keep}")
    if new_files:
        parts.append(f"SELECT {cols} FROM {parquet(engine, new_files, 'validated_new')}")
    if not parts:
        parts.append(f"SELECT * FROM {empty(engine, [*entity_columns('sales'), *LINEAGE])}")
    name = engine.temp_name("validated_after")
    engine.view(name, " UNION ALL ".join(parts))
    return ident(name)


def union_all(relations: Sequence[str]) -> str:
    """A query over every row of ``relations`` (SQL names of relations with the same columns)."""
    return " UNION ALL ".join(f"SELECT * FROM {r}" for r in relations)
