"""Analytics marts: daily aggregates over ``sales_enriched`` (pure SQL definitions).

Every measure is defined once here; ``docs/metrics.md`` states the same definitions in words.
Returns (``is_return``) are lines with a negative quantity in a source that allows returns.
- units_sold      = sum(quantity) of sale lines;  units_returned = -sum(quantity) of return lines
- gross_revenue   = sum(gross_amount) of sale lines (gross_amount = net_amount + discount_amount)
- discounts       = sum(discount_amount) of sale lines
- returns_amount  = -sum(net_amount) of return lines (a positive amount refunded)
- net_revenue     = sum(net_amount) of all lines = gross_revenue - discounts - returns_amount
- cost            = sum(cost_amount) of the lines with a cost (returned goods reduce cost); NULL if none has
- margin          = sum(margin) of the lines with a margin; NULL if none has
- lines_without_cost = count of lines whose cost is unknown
- transactions    = count(distinct transaction_id); lines = count(*)
- distinct_customers = count(distinct customer_id), anonymous lines not counted
- avg_basket_value = net_revenue / transactions, rounded half away from zero to the money scale
Sums are exact (DECIMAL(38, line scale)); avg_basket_value is the only rounded measure.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from retail_etl.model import Scales, sum_type

_TXNS = "count(DISTINCT transaction_id)"


def _avg_basket(scales: Scales) -> str:
    """net_revenue / transactions rounded half away from zero to the money scale, in exact integers
    of the line scale's unit: a DECIMAL division would go through DOUBLE and could round a tie the
    wrong way."""
    units = f"CAST(coalesce(sum(net_amount), 0) * {10 ** scales.lines} AS BIGINT)"
    per = f"{_TXNS} * {10 ** (scales.lines - scales.money)}"
    return (
        f"CAST(CAST(sign({units}) * ((2 * abs({units}) + {per}) // (2 * {per})) AS DECIMAL(18, 0)) "
        f"* CAST({_unit(scales.money)} AS DECIMAL({scales.money + 1}, {scales.money})) "
        f"AS DECIMAL(18, {scales.money})) AS avg_basket_value"
    )


def _unit(scale: int) -> str:
    """One unit of the last decimal place at ``scale`` (0.01 at 2), as SQL number text."""
    return f"0.{'0' * (scale - 1)}1" if scale else "1"


_MEASURES = """
    count(DISTINCT transaction_id) AS transactions,
    count(*) AS lines,
    coalesce(sum(quantity) FILTER (WHERE NOT is_return), 0) AS units_sold,
    coalesce(-sum(quantity) FILTER (WHERE is_return), 0) AS units_returned,
    coalesce(sum(gross_amount) FILTER (WHERE NOT is_return), 0) AS gross_revenue,
    coalesce(sum(discount_amount) FILTER (WHERE NOT is_return), 0) AS discounts,
    coalesce(-sum(net_amount) FILTER (WHERE is_return), 0) AS returns_amount,
    coalesce(sum(net_amount), 0) AS net_revenue,
    sum(cost_amount) AS cost,
    sum(margin) AS margin,
    count(*) FILTER (WHERE cost_amount IS NULL) AS lines_without_cost,
    count(DISTINCT customer_id) AS distinct_customers,
    {avg_basket}
"""

_QUANTITIES = {
    "units": "DECIMAL(38, 3)",  # the type DuckDB has always given it (a sum of DECIMAL(18, 3))
    "units_sold": "DECIMAL(18, 3)",
    "units_returned": "DECIMAL(18, 3)",
}
_SUMS = ("gross_revenue", "discounts", "returns_amount", "net_revenue", "cost", "margin")


def _casts(scales: Scales) -> dict[str, str]:
    return {**_QUANTITIES, **dict.fromkeys(_SUMS, sum_type(scales.lines))}


MARTS: dict[str, str] = {
    "daily_sales": f"SELECT sale_date, {_MEASURES} FROM enriched GROUP BY sale_date",
    "category_daily": f"SELECT sale_date, category, {_MEASURES} FROM enriched GROUP BY sale_date, category",
    "store_daily": f"SELECT sale_date, store_id, {_MEASURES} FROM enriched GROUP BY sale_date, store_id",
    "product_daily": """
        SELECT sale_date, product_id, product_name, category,
               units, net_revenue, margin, lines_without_cost,
               CAST(rank() OVER (PARTITION BY sale_date ORDER BY net_revenue DESC) AS BIGINT) AS revenue_rank
        FROM (
            SELECT sale_date, product_id,
                   any_value(product_name) AS product_name, any_value(category) AS category,
                   coalesce(sum(quantity), 0) AS units,
                   coalesce(sum(net_amount), 0) AS net_revenue,
                   sum(margin) AS margin,
                   count(*) FILTER (WHERE cost_amount IS NULL) AS lines_without_cost
            FROM enriched GROUP BY sale_date, product_id
        )
    """,
}

# Column order of each mart, and the ordering that makes its rows deterministic.
ORDER_BY = {
    "daily_sales": ("sale_date",),
    "category_daily": ("sale_date", "category"),
    "store_daily": ("sale_date", "store_id"),
    "product_daily": ("sale_date", "product_id"),
}


def mart_query(name: str, enriched: str, *, dialect: str = "duckdb", scales: Scales = Scales()) -> str:
    """The SELECT of mart ``name`` over the relation ``enriched``, rendered for ``dialect``;
    ``scales`` are the money scales of ``enriched``."""
    casts = _casts(scales)
    text = MARTS[name].replace("{avg_basket}", _avg_basket(scales))
    query = sqlglot.parse_one(text, dialect="duckdb")
    query = query.transform(
        lambda node: exp.to_table(enriched) if isinstance(node, exp.Table) and node.name == "enriched" else node
    )
    outer = exp.select(
        *[
            exp.cast(exp.column(col), to).as_(col) if (to := casts.get(col)) else exp.column(col)
            for col in _output_columns(query)
        ]
    ).from_(query.subquery("m"))
    return outer.order_by(*ORDER_BY[name]).sql(dialect=dialect)


def _output_columns(query: exp.Query) -> list[str]:
    return [s.alias_or_name for s in query.selects]
