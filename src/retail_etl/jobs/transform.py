"""Transform job: validated sales lines of some sale dates -> enriched lines + transform-stage quarantine.

For the affected dates it re-derives everything from *all* validated lines of those dates:
- de-duplicates by the source's key: among all validated lines sharing a key (any date), the
  first in delivery order (delivery id, then line) wins, or with ``key_wins="latest"`` the last
  (the latest delivery's, an upsert); the others are quarantined as ``duplicate``;
- joins the product reference (unique by product_id: validation enforces its key); an unknown
  product is quarantined (``unknown_product``) or kept with ``UNKNOWN`` attributes, as the source says;
  the master's attributes win over the line's;
- quarantined lines keep their original record, carried by the validated lines;
- computes gross_amount, cost_amount and margin (the line's own cost or margin first, then the
  master's unit cost), the return flag and date parts.
Because the result for a date depends only on the validated lines and the products, re-running
a batch (after a crash, or in several pieces) gives the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlglot import exp

from retail_etl.engines.base import Engine
from retail_etl.model import (
    LINEAGE_COLUMNS,
    PRODUCT_ATTRIBUTES,
    QUANTITY_OPERAND,
    SALES,
    Scales,
    amount_type,
    price_type,
)
from retail_etl.quoting import ident, idents, lit

UNKNOWN = "UNKNOWN"
DUPLICATE_RULE = "Transform.duplicate"
UNKNOWN_PRODUCT_RULE = "Transform.unknown_product"


@dataclass(frozen=True)
class TransformFigures:
    """One source's transform: validated lines of the dates in, enriched lines out, and the
    lines quarantined as duplicates or for an unknown product."""

    lines_in: int
    enriched: int
    duplicates: int
    unknown_products: int


def affected_dates(engine: Engine, *, validated_after: str, changed: str, key: Sequence[str] | None) -> str:
    """A new relation ``(sale_date)``: dates of the changed lines, plus dates of lines sharing their
    keys; returns its SQL name.

    ``changed`` holds the lines the batch adds or removes (new and old versions of its files).
    """
    parts = [f"SELECT DISTINCT sale_date FROM {changed}"]
    if key:
        cols = idents(key)
        not_null = " AND ".join(f"{ident(k)} IS NOT NULL" for k in key)
        parts.append(
            f"SELECT DISTINCT v.sale_date FROM {validated_after} v "
            f"SEMI JOIN (SELECT DISTINCT {cols} FROM {changed} WHERE {not_null}) k USING ({cols})"
        )
    name = engine.temp_name("dates")
    engine.table(
        name, "SELECT DISTINCT sale_date FROM (" + " UNION ".join(parts) + ") AS d WHERE sale_date IS NOT NULL"
    )
    return ident(name)


def transform(
    engine: Engine,
    *,
    validated_after: str,
    dates: str,
    products: str,
    key: Sequence[str] | None,
    returns: bool,
    unknown_products: str,
    run_id: str,
    every_date: bool = False,
    scales: Scales = Scales(),
    attributes: Sequence[tuple[str, str, bool]] = (),
    key_wins: str = "first",
) -> tuple[str, str]:
    """New relations (enriched, quarantine) for the sale dates in relation ``dates``; returns
    their SQL names.

    ``every_date``: ``dates`` holds every sale date of ``validated_after`` (a first run, a
    rebuild), so every line is a candidate. ``scales`` types the money columns. ``attributes``
    are the extra columns of the enriched lines: (name, SQL type, whether this source's lines have it).
    ``key_wins``: ``first`` or ``latest`` (see the module).

    ``validated_after`` holds the validated lines of ONE source as they are after this batch.
    Both results are views, computed once by the writes that read them; :func:`counts` then
    reads the figures from the written files.
    """
    run = lit(run_id)
    name = {part: engine.temp_name(part) for part in (
        "candidates", "repeated", "ranked", "deduped", "joined", "enriched", "transform_quarantine")}
    candidates, repeated, ranked, deduped, joined = (
        ident(name[n]) for n in ("candidates", "repeated", "ranked", "deduped", "joined"))
    engine.view(name["candidates"],
                f"SELECT * FROM {validated_after} WHERE sale_date IN (SELECT sale_date FROM {dates})")
    if key:
        cols = idents(key)
        not_null = " AND ".join(f"{ident(k)} IS NOT NULL" for k in key)
        partition = ", ".join("v." + ident(k) for k in key)
        # Only the few keys that repeat (any date) need ranking; every other line is first of its key.
        # When every line is a candidate, the lines sharing a key with one are all lines.
        sharing = (f"{validated_after} WHERE {not_null}" if every_date else
                   f"{validated_after} SEMI JOIN (SELECT DISTINCT {cols} FROM {candidates} WHERE {not_null}) k "
                   f"USING ({cols})")
        engine.table(name["repeated"], f"SELECT {cols} FROM {sharing} GROUP BY {cols} HAVING count(*) > 1")
        # Delivery ids sort in delivery order; a line is one (delivery, line) pair.
        order = ("v.delivery_id DESC, v.source_line DESC" if key_wins == "latest"
                 else "v.delivery_id, v.source_line")
        engine.table(
            name["ranked"],
            f"""
            SELECT v.delivery_id, v.source_line,
                   row_number() OVER (PARTITION BY {partition} ORDER BY {order}) AS _rank,
                   first_value(v.source_file || ':' || v.source_line) OVER (
                       PARTITION BY {partition} ORDER BY {order}) AS _first
            FROM {validated_after} v SEMI JOIN {repeated} USING ({cols})
            """,
        )
        engine.view(
            name["deduped"],
            f"SELECT c.*, coalesce(r._rank, 1) AS _rank, r._first "
            f"FROM {candidates} c LEFT JOIN {ranked} r USING (delivery_id, source_line)",
        )
    else:
        engine.view(name["deduped"], f"SELECT *, 1 AS _rank, CAST(NULL AS VARCHAR) AS _first FROM {candidates}")

    is_return = "(quantity < 0)" if returns else "false"
    keep_unknown = unknown_products == "keep"
    unknown = lit(UNKNOWN)
    # The master's attributes win; the line's fill in for a product it does not describe.
    fallback = f", {unknown}" if keep_unknown else ""
    attrs = ", ".join(f"coalesce(p.{ident(a)}, d.{ident(a)}{fallback}) AS {ident(a)}" for a in PRODUCT_ATTRIBUTES)
    lines = lit(scales.lines)
    amount, price = amount_type(scales.lines), price_type(scales.money)
    completed = {*PRODUCT_ATTRIBUTES, "unit_cost", "cost_amount", "margin"}
    line_columns = ", ".join(
        f"d.{ident(c)}" for c in [*(n for n in SALES.names if n not in completed),
                                  *(n for n, _, present in attributes if present),
                                  *(n for n, _ in LINEAGE_COLUMNS), "record", "_rank", "_first"])
    engine.view(
        name["joined"],
        f"""
        SELECT {line_columns},
               p.product_id IS NOT NULL AS _known, {attrs}, p.list_price,
               CAST(coalesce(d.unit_cost, p.unit_cost) AS {price}) AS unit_cost,
               CAST(coalesce(d.cost_amount, round(CAST(d.quantity AS {QUANTITY_OPERAND}) * p.unit_cost, {lines})) AS {amount}) AS cost_amount,
               d.margin AS _line_margin
        FROM {deduped} d LEFT JOIN {products} p ON d.product_id = p.product_id
        """,
    )
    extra = "".join(
        f" {ident(n) if present else exp.cast(exp.null(), exp.DataType.build(sql_type)).sql('duckdb')} AS {ident(n)},"
        for n, sql_type, present in attributes)
    kept_line = "the line first seen at " if key_wins == "first" else "the line of the latest delivery at "
    duplicate_message = lit("+".join(key or ()) + " duplicates " + kept_line)
    kept = f"_rank = 1 AND (_known OR {lit(keep_unknown)})"
    # Views: each is computed once, by the Parquet write that reads it.
    engine.view(
        name["enriched"],
        f"""
        SELECT transaction_id, line_number, sold_at, sale_date, store_id, product_id, customer_id,
               quantity, unit_price, discount_amount, net_amount, currency, channel, payment_method,
               {is_return} AS is_return,
               product_name, category, subcategory, brand, unit_cost, list_price,
               CAST(net_amount + discount_amount AS {amount}) AS gross_amount,
               cost_amount,
               CAST(coalesce(_line_margin, net_amount - cost_amount) AS {amount}) AS margin,
               discount_rate,{extra}
               CAST(year(sale_date) AS INTEGER) AS year, CAST(quarter(sale_date) AS INTEGER) AS quarter,
               CAST(month(sale_date) AS INTEGER) AS month, CAST(isoyear(sale_date) AS INTEGER) AS iso_year,
               CAST(weekofyear(sale_date) AS INTEGER) AS iso_week, CAST(isodow(sale_date) AS INTEGER) AS weekday,
               source, source_file, delivery_id, source_line, {run} AS run_id
        FROM {joined} WHERE {kept}
        """,
    )
    engine.view(
        name["transform_quarantine"],
        f"""
        SELECT {run} AS run_id, CAST(now() AS TIMESTAMP) AS quarantined_at,
               source, source_file, delivery_id, source_line, 'transform' AS stage,
               CASE WHEN _rank > 1 THEN [{lit(DUPLICATE_RULE)}] ELSE [{lit(UNKNOWN_PRODUCT_RULE)}] END AS failed_rules,
               CASE WHEN _rank > 1
                    THEN [{duplicate_message} || _first]
                    ELSE ['product_id ''' || product_id || ''' is not in the products reference'] END AS messages,
               record, CAST(NULL AS VARCHAR) AS raw_line, sale_date
        FROM {joined} WHERE NOT ({kept})
        """,
    )
    return ident(name["enriched"]), ident(name["transform_quarantine"])


def counts(
    engine: Engine, enriched_files: Sequence[str], quarantine_files: Sequence[str]
) -> dict[str, TransformFigures]:
    """Per source, the figures of a transform, read from the files its results were written to
    (a count over the views would compute the dedup and the join once more)."""
    figures: dict[str, list[int]] = {}
    if enriched_files:
        written = engine.temp_name("enriched_written")
        engine.read_parquet_view(written, enriched_files)
        for source, n in engine.fetch_rows(f"SELECT source, count(*) FROM {ident(written)} GROUP BY source"):
            figures.setdefault(source, [0, 0, 0])[0] = n
    if quarantine_files:
        written = engine.temp_name("quarantine_written")
        engine.read_parquet_view(written, quarantine_files)
        for source, dups, unknown in engine.fetch_rows(
            f"SELECT source, count(*) FILTER (WHERE list_contains(failed_rules, {lit(DUPLICATE_RULE)})), "
            f"count(*) FILTER (WHERE list_contains(failed_rules, {lit(UNKNOWN_PRODUCT_RULE)})) "
            f"FROM {ident(written)} GROUP BY source"
        ):
            figures.setdefault(source, [0, 0, 0])[1:] = [dups, unknown]
    return {
        source: TransformFigures(enriched + dups + unknown, enriched, dups, unknown)
        for source, (enriched, dups, unknown) in figures.items()
    }
